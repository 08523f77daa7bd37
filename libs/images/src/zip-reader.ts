import { createReadStream } from 'node:fs';
import { FileHandle, open } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32, createInflateRaw } from 'node:zlib';

/**
 * A zip reader for code packages, built to be handed hostile archives: it trusts the central
 * directory only for what it checks up front (names, types, entry count, the sizes they claim)
 * and then holds every entry to its claims while inflating it (size, CRC), so a bomb is refused
 * from its directory when it admits its size and after at most its claimed bytes when it lies.
 */

export interface ZipLimits {
  /** Most entries (files and directories). */
  maxEntries: number;
  /** Most bytes all entries hold once inflated. */
  maxUnpackedBytes: number;
}

export interface ZipEntry {
  /** Normalized relative path (no `.`, `..` or empty segments); directories without the `/`. */
  path: string;
  directory: boolean;
  /** Unix permission bits from the archive, when it was made on Unix; 0 otherwise. */
  mode: number;
  method: 0 | 8;
  crc: number;
  compressedSize: number;
  size: number;
  /** Offset of the entry's local header. */
  offset: number;
}

/** The input is not a zip, or one Kiln refuses; the message says which entry and why. */
export class ZipFormatError extends Error {
  override name = 'ZipFormatError';
}

const EOCD_SIGNATURE = 0x06054b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const EOCD_BYTES = 22;
const LOCAL_BYTES = 30;
const CENTRAL_BYTES = 46;
const MAX_COMMENT = 0xffff;
/** The central directory is read into memory: 16 MiB holds 10,000 entries of long names. */
const MAX_DIRECTORY_BYTES = 16 * 1024 * 1024;
const UNIX = 3;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** Whether `head` (an upload's first bytes) starts like a zip: a local header, or an empty zip. */
export function looksLikeZip(head: Buffer): boolean {
  if (head.length < 4) return false;
  const signature = head.readUInt32LE(0);
  return signature === LOCAL_SIGNATURE || signature === EOCD_SIGNATURE;
}

/**
 * Reads and checks the central directory of the zip in `file`: one disk, no ZIP64, no encryption,
 * stored or deflated entries only, no name escaping the directory (absolute, `..`, a drive, a
 * backslash), no symlink or device entry, no duplicate, no file that is also a parent directory,
 * no entries overlapping each other, at most `maxEntries` entries claiming at most
 * `maxUnpackedBytes` in all. Returns the entries in archive order.
 */
export async function readZipDirectory(file: string, limits: ZipLimits): Promise<ZipEntry[]> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const end = await endOfDirectory(handle, size);
    if (end.entries > limits.maxEntries) {
      throw new ZipFormatError(`the zip has more than ${limits.maxEntries} entries`);
    }
    const directory = await readAt(handle, end.offset, end.size);
    const entries = centralEntries(directory, end.entries);
    checkEntries(entries, limits);
    await checkPlacement(handle, entries, end.offset);
    return entries;
  } finally {
    await handle.close();
  }
}

/**
 * Inflates every entry of the checked zip `file`, in archive order, handing each one's bytes to
 * the sink `onEntry` returns (or discarding them for `null`). An entry that inflates to more than
 * it claimed, to other bytes than its CRC says, or that takes the total past `maxUnpackedBytes`
 * stops the reading with a `ZipFormatError`.
 */
export async function inflateZip(
  file: string,
  entries: ZipEntry[],
  limits: ZipLimits,
  onEntry: (entry: ZipEntry) => Promise<Writable | null>,
): Promise<void> {
  const handle = await open(file, 'r');
  const total = { bytes: 0 };
  try {
    for (const entry of entries) {
      const start = await dataOffset(handle, entry);
      const sink = entry.directory ? null : await onEntry(entry);
      if (entry.directory) continue;
      const raw: Readable =
        entry.compressedSize === 0
          ? Readable.from([])
          : createReadStream(file, { start, end: start + entry.compressedSize - 1 });
      const check = held(entry, limits, total);
      const out = sink ?? discard();
      const flow =
        entry.method === 8
          ? pipeline(raw, createInflateRaw(), check, out)
          : pipeline(raw, check, out);
      await flow.catch((error: unknown) => {
        if (error instanceof ZipFormatError) throw error;
        if ((error as { code?: string }).code?.startsWith('Z_')) {
          throw new ZipFormatError(`entry "${entry.path}" is corrupt: ${(error as Error).message}`);
        }
        throw error;
      });
    }
  } finally {
    await handle.close();
  }
}

/** Checks a whole zip: its directory, then every entry inflated (to nowhere). */
export async function checkZip(file: string, limits: ZipLimits): Promise<ZipEntry[]> {
  const entries = await readZipDirectory(file, limits);
  await inflateZip(file, entries, limits, async () => null);
  return entries;
}

/** Passes an entry's inflated bytes on, holding them to its claimed size and CRC and the cap. */
function held(entry: ZipEntry, limits: ZipLimits, total: { bytes: number }) {
  let size = 0;
  let crc = 0;
  return async function* (chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of chunks) {
      size += chunk.length;
      total.bytes += chunk.length;
      if (size > entry.size) {
        throw new ZipFormatError(
          `entry "${entry.path}" inflates to more than the ${entry.size} bytes it claims (a zip bomb?)`,
        );
      }
      if (total.bytes > limits.maxUnpackedBytes) throw unpackedTooBig(limits);
      crc = crc32(chunk, crc);
      yield chunk;
    }
    if (size !== entry.size) {
      throw new ZipFormatError(
        `entry "${entry.path}" holds ${size} bytes, not the ${entry.size} it claims`,
      );
    }
    if (crc >>> 0 !== entry.crc) {
      throw new ZipFormatError(`entry "${entry.path}" does not match its CRC`);
    }
  };
}

function discard(): Writable {
  return new Writable({ write: (_chunk, _encoding, done) => done() });
}

function unpackedTooBig(limits: ZipLimits): ZipFormatError {
  return new ZipFormatError(
    `the zip unpacks to more than ${limits.maxUnpackedBytes} bytes (KILN_ZIP_MAX_UNPACKED_BYTES)`,
  );
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, position);
  if (bytesRead !== length) throw new ZipFormatError('the zip is truncated');
  return buffer;
}

async function endOfDirectory(handle: FileHandle, size: number) {
  if (size < EOCD_BYTES) throw new ZipFormatError('not a zip: too short');
  const tailLength = Math.min(size, EOCD_BYTES + MAX_COMMENT);
  const tail = await readAt(handle, size - tailLength, tailLength);
  for (let at = tail.length - EOCD_BYTES; at >= 0; at--) {
    if (tail.readUInt32LE(at) !== EOCD_SIGNATURE) continue;
    if (at + EOCD_BYTES + tail.readUInt16LE(at + 20) !== tail.length) continue;
    const disk = tail.readUInt16LE(at + 4);
    const directoryDisk = tail.readUInt16LE(at + 6);
    const onDisk = tail.readUInt16LE(at + 8);
    const entries = tail.readUInt16LE(at + 10);
    const directorySize = tail.readUInt32LE(at + 12);
    const offset = tail.readUInt32LE(at + 16);
    if (entries === 0xffff || directorySize === 0xffffffff || offset === 0xffffffff) {
      throw new ZipFormatError('ZIP64 archives are not supported');
    }
    if (disk !== 0 || directoryDisk !== 0 || onDisk !== entries) {
      throw new ZipFormatError('multi-part zips are not supported');
    }
    const position = size - tailLength + at;
    if (offset + directorySize > position || directorySize > MAX_DIRECTORY_BYTES) {
      throw new ZipFormatError('the zip central directory is out of bounds');
    }
    return { entries, size: directorySize, offset };
  }
  throw new ZipFormatError('not a zip: no end of central directory');
}

function centralEntries(directory: Buffer, count: number): ZipEntry[] {
  const entries: ZipEntry[] = [];
  let at = 0;
  for (let index = 0; index < count; index++) {
    if (at + CENTRAL_BYTES > directory.length || directory.readUInt32LE(at) !== CENTRAL_SIGNATURE) {
      throw new ZipFormatError('the zip central directory is damaged');
    }
    const nameLength = directory.readUInt16LE(at + 28);
    const next =
      at +
      CENTRAL_BYTES +
      nameLength +
      directory.readUInt16LE(at + 30) +
      directory.readUInt16LE(at + 32);
    if (next > directory.length) throw new ZipFormatError('the zip central directory is damaged');
    const rawName = directory.subarray(at + CENTRAL_BYTES, at + CENTRAL_BYTES + nameLength);
    entries.push(centralEntry(directory, at, rawName.toString('utf8')));
    at = next;
  }
  return entries;
}

function centralEntry(directory: Buffer, at: number, name: string): ZipEntry {
  const label = `entry "${name.replace(/[^\x20-\x7e]/g, '?')}"`;
  const flags = directory.readUInt16LE(at + 8);
  if (flags & 0x41) throw new ZipFormatError(`${label} is encrypted`);
  const method = directory.readUInt16LE(at + 10);
  if (method !== 0 && method !== 8) {
    throw new ZipFormatError(`${label} uses compression method ${method} (only stored, deflate)`);
  }
  const unixMode =
    directory.readUInt8(at + 5) === UNIX ? directory.readUInt32LE(at + 38) >>> 16 : 0;
  const type = unixMode & S_IFMT;
  if (type === S_IFLNK) throw new ZipFormatError(`${label} is a symbolic link`);
  if (type !== 0 && type !== S_IFREG && type !== S_IFDIR) {
    throw new ZipFormatError(`${label} is a device file, FIFO or socket`);
  }
  const directoryEntry = name.endsWith('/') || type === S_IFDIR;
  const compressedSize = directory.readUInt32LE(at + 20);
  const size = directory.readUInt32LE(at + 24);
  if (directoryEntry && size !== 0) throw new ZipFormatError(`${label} is a directory with data`);
  if (method === 0 && compressedSize !== size) {
    throw new ZipFormatError(`${label} is stored but its sizes differ`);
  }
  return {
    path: entryPath(name, label),
    directory: directoryEntry,
    mode: unixMode & 0o7777,
    method,
    crc: directory.readUInt32LE(at + 16),
    compressedSize,
    size,
    offset: directory.readUInt32LE(at + 42),
  };
}

/** The entry's path made relative and plain, or a refusal when it could land outside. */
function entryPath(name: string, label: string): string {
  if (
    name.includes('\\') ||
    name.includes('\0') ||
    name.startsWith('/') ||
    /^[A-Za-z]:/.test(name)
  ) {
    throw new ZipFormatError(`${label} is an absolute or non-portable path`);
  }
  const path = posix.normalize(name).replace(/\/+$/, '');
  if (path === '..' || path.startsWith('../') || path.split('/').includes('..')) {
    throw new ZipFormatError(`${label} escapes the directory`);
  }
  if (path === '.' || path === '') throw new ZipFormatError(`${label} has an empty path`);
  return path;
}

function checkEntries(entries: ZipEntry[], limits: ZipLimits): void {
  const kinds = new Map<string, boolean>();
  let claimed = 0;
  for (const entry of entries) {
    if (kinds.has(entry.path)) throw new ZipFormatError(`entry "${entry.path}" appears twice`);
    kinds.set(entry.path, entry.directory);
    claimed += entry.size;
    if (claimed > limits.maxUnpackedBytes) throw unpackedTooBig(limits);
  }
  for (const path of kinds.keys()) {
    for (let cut = path.indexOf('/'); cut > 0; cut = path.indexOf('/', cut + 1)) {
      if (kinds.get(path.slice(0, cut)) === false) {
        throw new ZipFormatError(`entry "${path}" is inside "${path.slice(0, cut)}", a file`);
      }
    }
  }
}

/**
 * Every entry's local header and data lie before the central directory, and no two entries share
 * bytes: overlapping entries make a small zip inflate many times over.
 */
async function checkPlacement(
  handle: FileHandle,
  entries: ZipEntry[],
  directoryOffset: number,
): Promise<void> {
  let end = 0;
  for (const entry of [...entries].sort((a, b) => a.offset - b.offset)) {
    if (entry.offset < end) throw new ZipFormatError(`entry "${entry.path}" overlaps another`);
    end = (await dataOffset(handle, entry)) + entry.compressedSize;
    if (end > directoryOffset) throw new ZipFormatError(`entry "${entry.path}" is out of bounds`);
  }
}

/** Where the entry's data starts, past its local header (whose own sizes may be zero). */
async function dataOffset(handle: FileHandle, entry: ZipEntry): Promise<number> {
  const local = await readAt(handle, entry.offset, LOCAL_BYTES);
  if (local.readUInt32LE(0) !== LOCAL_SIGNATURE) {
    throw new ZipFormatError(`entry "${entry.path}" has no local header`);
  }
  return entry.offset + LOCAL_BYTES + local.readUInt16LE(26) + local.readUInt16LE(28);
}
