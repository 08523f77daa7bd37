/**
 * A streaming tar reader: headers are parsed as they arrive and each entry's bytes are handed to
 * a sink chunk by chunk, awaiting the sink (so a slow disk slows the reading, and memory stays at
 * one chunk). Reads ustar, GNU long names and PAX headers (`path`, `linkpath`, `size`), which is
 * what Go's archive/tar writes for `docker save`.
 */

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'device' | 'other';

export interface TarHeader {
  /** As written in the archive (not normalized). */
  path: string;
  type: TarEntryType;
  /** The raw type flag, for messages. */
  typeflag: string;
  size: number;
  linkPath: string;
}

export interface TarEntrySink {
  write(chunk: Buffer): Promise<void>;
  end(): Promise<void>;
}

/** The input is not a tar archive, or a damaged one; the message says how. */
export class TarFormatError extends Error {
  override name = 'TarFormatError';
}

const BLOCK = 512;
/** PAX and GNU long-name records larger than this are refused (they are a few hundred bytes). */
const MAX_META_BYTES = 1024 * 1024;

/**
 * Reads the archive from `source`, calling `onEntry` for every entry (metadata records excepted);
 * the entry's content goes to the sink it returns, or is skipped for `null`. Resolves once the
 * end-of-archive blocks (or the end of input at an entry boundary) are reached; anything after
 * them is read and ignored.
 */
export async function readTar(
  source: AsyncIterable<Buffer>,
  onEntry: (header: TarHeader) => Promise<TarEntrySink | null>,
): Promise<void> {
  let pending: Buffer = Buffer.alloc(0); // bytes of an incomplete header block
  let offset = 0; // archive offset of the next byte to read
  let entries = 0;
  let zeroBlocks = 0;
  let ended = false;
  // The entry whose content is being read.
  let sink = null as TarEntrySink | null;
  let remaining = 0;
  let padding = 0;
  let meta = null as { kind: 'pax' | 'gnu-path' | 'gnu-link' | 'global'; chunks: Buffer[] } | null;
  let pax: Record<string, string> = {};
  let longPath: string | undefined;
  let longLink: string | undefined;

  const endEntry = async () => {
    if (sink) await sink.end();
    sink = null;
    if (meta) {
      const data = Buffer.concat(meta.chunks);
      if (meta.kind === 'pax') pax = parsePax(data, offset);
      else if (meta.kind === 'gnu-path') longPath = cString(data);
      else if (meta.kind === 'gnu-link') longLink = cString(data);
      meta = null;
    }
  };

  const onHeader = async (block: Buffer) => {
    if (block.every((byte) => byte === 0)) {
      zeroBlocks++;
      if (zeroBlocks >= 2) ended = true;
      return;
    }
    if (zeroBlocks > 0) throw new TarFormatError(`a zero block inside the archive at ${offset}`);
    const header = parseHeader(block, offset, entries === 0);
    entries++;
    const size = pax.size !== undefined ? Number(pax.size) : header.size;
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new TarFormatError(`bad entry size at offset ${offset}`);
    }
    remaining = size;
    padding = (BLOCK - (size % BLOCK)) % BLOCK;
    const flag = header.typeflag;
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > MAX_META_BYTES) throw new TarFormatError(`a ${size}-byte metadata record`);
      const kind =
        flag === 'x' ? 'pax' : flag === 'g' ? 'global' : flag === 'L' ? 'gnu-path' : 'gnu-link';
      meta = { kind, chunks: [] };
      return;
    }
    const entry: TarHeader = {
      path: pax.path ?? longPath ?? header.path,
      type: entryType(flag),
      typeflag: flag,
      size,
      linkPath: pax.linkpath ?? longLink ?? header.linkPath,
    };
    pax = {};
    longPath = undefined;
    longLink = undefined;
    sink = await onEntry(entry);
  };

  for await (const input of source) {
    let chunk = input;
    while (chunk.length > 0 && !ended) {
      if (remaining > 0) {
        const take = Math.min(remaining, chunk.length);
        const part = chunk.subarray(0, take);
        if (meta) meta.chunks.push(Buffer.from(part));
        else if (sink) await sink.write(part);
        remaining -= take;
        offset += take;
        chunk = chunk.subarray(take);
        if (remaining === 0 && padding === 0) await endEntry();
        continue;
      }
      if (padding > 0) {
        const take = Math.min(padding, chunk.length);
        padding -= take;
        offset += take;
        chunk = chunk.subarray(take);
        if (padding === 0) await endEntry();
        continue;
      }
      const need = BLOCK - pending.length;
      if (chunk.length < need) {
        pending = Buffer.concat([pending, chunk]);
        break;
      }
      const block = pending.length
        ? Buffer.concat([pending, chunk.subarray(0, need)])
        : chunk.subarray(0, need);
      pending = Buffer.alloc(0);
      chunk = chunk.subarray(need);
      await onHeader(block);
      offset += BLOCK;
      if (remaining === 0 && padding === 0) await endEntry();
    }
  }
  if (entries === 0) throw new TarFormatError('not a tar archive (no entry in it)');
  if (!ended && (remaining > 0 || padding > 0 || pending.length > 0)) {
    throw new TarFormatError(`the archive is truncated (it ends at byte ${offset})`);
  }
}

interface RawHeader {
  path: string;
  typeflag: string;
  size: number;
  linkPath: string;
}

function parseHeader(block: Buffer, offset: number, first: boolean): RawHeader {
  const stored = parseNumber(block.subarray(148, 156));
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  if (stored === undefined || (stored !== unsigned && stored !== signed)) {
    throw new TarFormatError(
      first
        ? 'not a tar archive (its first block is no tar header)'
        : `corrupt tar header at offset ${offset} (bad checksum)`,
    );
  }
  const size = parseNumber(block.subarray(124, 136));
  if (size === undefined) throw new TarFormatError(`bad entry size at offset ${offset}`);
  let path = cString(block.subarray(0, 100));
  const magic = block.subarray(257, 263).toString('latin1');
  if (magic.startsWith('ustar')) {
    const prefix = cString(block.subarray(345, 500));
    if (prefix) path = `${prefix}/${path}`;
  }
  const flag = String.fromCharCode(block[156] || 0x30);
  return { path, typeflag: flag, size, linkPath: cString(block.subarray(157, 257)) };
}

function entryType(flag: string): TarEntryType {
  switch (flag) {
    case '0':
    case '7':
      return 'file';
    case '5':
      return 'directory';
    case '2':
      return 'symlink';
    case '1':
      return 'hardlink';
    case '3':
    case '4':
    case '6':
      return 'device';
    default:
      return 'other';
  }
}

/** Octal (NUL/space padded), or GNU base-256 when the high bit of the first byte is set. */
function parseNumber(field: Buffer): number | undefined {
  if (field[0] & 0x80) {
    if (field[0] & 0x40) return undefined; // negative
    let value = field[0] & 0x3f;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i];
    return Number.isSafeInteger(value) ? value : undefined;
  }
  const text = field
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^[ ]+/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) return undefined;
  return parseInt(text, 8);
}

function cString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('utf8');
}

/** PAX records: `<length> <key>=<value>\n`. */
function parsePax(data: Buffer, offset: number): Record<string, string> {
  const records: Record<string, string> = {};
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    const length = space === -1 ? NaN : Number(data.subarray(at, space).toString('latin1'));
    if (!Number.isInteger(length) || length <= 0 || at + length > data.length) {
      if (data.subarray(at).every((byte) => byte === 0)) break;
      throw new TarFormatError(`corrupt PAX header before offset ${offset}`);
    }
    const record = data.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) records[record.slice(0, eq)] = record.slice(eq + 1);
    at += length;
  }
  return records;
}
