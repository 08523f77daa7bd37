import { createHash } from 'node:crypto';
import { FileHandle, mkdir, mkdtemp, open as openFile, readFile, rm } from 'node:fs/promises';
import { posix, join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { ErrorCode, KilnException } from '@kiln/common';
import type { KilnConfig } from '@kiln/config';
import { readTar, TarEntrySink, TarFormatError, TarHeader } from './tar-reader';

/**
 * The caps an upload is checked against: `KILN_UPLOAD_*`, documented in libs/config, and the
 * largest image a task may run (`KILN_IMAGE_MAX_BYTES`), when given.
 */
export type UploadLimits = KilnConfig['uploads'] & { maxImageBytes?: number };

/** A blob of the image, spooled on disk, with its digest recomputed from its bytes. */
export interface SpooledBlob {
  file: string;
  size: number;
  /** `sha256:<hex>` */
  digest: string;
}

/** One checked image out of a `docker save` tarball; `dispose()` removes its spool. */
export interface ImageArchive {
  config: SpooledBlob;
  /** In the image's order; the digest is the layer's diff id (the layers are uncompressed tars). */
  layers: SpooledBlob[];
  dispose(): Promise<void>;
}

/** Un-gzipped bytes read before the gzip ratio is judged: small archives compress unevenly. */
const RATIO_GRACE_BYTES = 16 * 1024 * 1024;
/** manifest.json and the image config are read into memory: they are small. */
const MAX_JSON_BYTES = 4 * 1024 * 1024;
const SHA256 = /^sha256:[a-f0-9]{64}$/;
/** A zip code package, which goes to `POST codes` as its `file`, not to the image routes. */
const ZIP_MAGIC = Buffer.from('PK\u0003\u0004', 'latin1');

interface Spooled {
  kind: 'file';
  blob: SpooledBlob;
}
interface Link {
  kind: 'link';
  /** Normalized path of the entry it points to. */
  target: string;
}
type Entry = Spooled | Link | { kind: 'directory' };

/**
 * Reads a `docker save` tarball (plain or gzip) from `input` into a spool directory while
 * checking it, and returns its one image once every check passed: exactly one image; manifest and
 * config parse; the config's digest and every layer's diff id recomputed and matched; no absolute
 * path, `..`, device file or link escaping the archive; caps on size, gzip ratio, layers and
 * entries. Tags in the tarball are never read. Fails with a 400 (413 for size) naming the problem,
 * and leaves nothing on disk then.
 */
export async function readImageArchive(
  input: Readable,
  limits: UploadLimits,
): Promise<ImageArchive> {
  await mkdir(limits.spoolDir, { recursive: true });
  const dir = await mkdtemp(join(limits.spoolDir, 'upload-'));
  const dispose = () => rm(dir, { recursive: true, force: true });
  const open = new Set<FileHandle>();
  // Read through a pipe, so that when reading stops early the input can be unhooked and drained:
  // the client of a refused upload still gets its answer.
  const chunks = new PassThrough({ highWaterMark: 1024 * 1024 });
  const cutOff = () => {
    if (!input.readableEnded) chunks.destroy(KilnException.badRequest('the upload was cut off'));
  };
  input.once('error', cutOff).once('close', cutOff).pipe(chunks);
  try {
    const entries = await spool(chunks, limits, dir, open);
    const image = await checkImage(entries, limits);
    return { ...image, dispose };
  } catch (error) {
    input.unpipe(chunks);
    chunks.destroy();
    input.resume();
    await Promise.all([...open].map((handle) => handle.close().catch(() => undefined)));
    await dispose();
    if (error instanceof TarFormatError) {
      throw KilnException.badRequest(
        `${error.message}: Kiln runs Docker images, upload a \`docker save\` tarball (plain or gzip)`,
      );
    }
    if ((error as { code?: string }).code === 'Z_DATA_ERROR') {
      throw KilnException.badRequest(`the gzip stream is corrupt: ${(error as Error).message}`);
    }
    throw error;
  }
}

async function spool(
  input: AsyncIterable<Buffer>,
  limits: UploadLimits,
  dir: string,
  open: Set<FileHandle>,
): Promise<Map<string, Entry>> {
  const entries = new Map<string, Entry>();
  let count = 0;
  await readTar(unpacked(input, limits), async (header) => {
    if (++count > limits.maxEntries) {
      throw KilnException.badRequest(`the tarball has more than ${limits.maxEntries} entries`);
    }
    const path = archivePath(header.path, `entry "${header.path}"`);
    if (entries.has(path)) throw KilnException.badRequest(`entry "${path}" appears twice`);
    switch (header.type) {
      case 'directory':
        entries.set(path, { kind: 'directory' });
        return null;
      case 'symlink': {
        if (header.linkPath.startsWith('/')) throw escapes(header);
        const target = posix.normalize(posix.join(posix.dirname(path), header.linkPath));
        if (target === '..' || target.startsWith('../')) throw escapes(header);
        entries.set(path, { kind: 'link', target });
        return null;
      }
      case 'hardlink': {
        const target = archivePath(header.linkPath, `hard link "${path}"`);
        if (entries.get(target)?.kind !== 'file') {
          throw KilnException.badRequest(
            `hard link "${path}" points to "${target}", no file before it`,
          );
        }
        entries.set(path, { kind: 'link', target });
        return null;
      }
      case 'device':
        throw KilnException.badRequest(`entry "${path}" is a device file or FIFO`);
      case 'other':
        throw KilnException.badRequest(
          `entry "${path}" has an unsupported type "${header.typeflag}"`,
        );
      case 'file': {
        const blob: SpooledBlob = { file: join(dir, String(count)), size: header.size, digest: '' };
        entries.set(path, { kind: 'file', blob });
        return spoolFile(blob, open);
      }
    }
  });
  return entries;
}

/** Writes an entry to its spool file, hashing it on the way. */
async function spoolFile(blob: SpooledBlob, open: Set<FileHandle>): Promise<TarEntrySink> {
  const handle = await openFile(blob.file, 'wx', 0o600);
  open.add(handle);
  const hash = createHash('sha256');
  return {
    async write(chunk) {
      hash.update(chunk);
      await handle.write(chunk);
    },
    async end() {
      open.delete(handle);
      await handle.close();
      blob.digest = `sha256:${hash.digest('hex')}`;
    },
  };
}

/**
 * The tar bytes: `input` as is, or un-gzipped when it starts with gzip's magic number. The sizes
 * are checked as the bytes arrive, so an oversized upload or a gzip bomb stops early.
 */
async function* unpacked(
  input: AsyncIterable<Buffer>,
  limits: UploadLimits,
): AsyncGenerator<Buffer> {
  const counter = { bytes: 0 };
  const source = sized(input, limits.maxBytes, counter)[Symbol.asyncIterator]();
  const first = await source.next();
  if (first.done) {
    throw KilnException.badRequest('the upload is empty: send a `docker save` tarball');
  }
  const rest = async function* () {
    yield first.value;
    for (let next = await source.next(); !next.done; next = await source.next()) yield next.value;
  };
  if (first.value.subarray(0, 4).equals(ZIP_MAGIC)) {
    throw KilnException.badRequest(
      'this is a zip, not a `docker save` tarball: send zip code packages as the `file` of `POST …/codes`',
    );
  }
  const gzip = first.value.length >= 2 && first.value[0] === 0x1f && first.value[1] === 0x8b;
  if (!gzip) {
    let total = 0;
    for await (const chunk of rest()) {
      total += chunk.length;
      if (total > limits.maxUnpackedBytes) throw tooBig(limits);
      yield chunk;
    }
    return;
  }
  const gunzip = createGunzip();
  // Failures of the source reach the loop below through gunzip, which the pipeline destroys.
  // Not awaited when stopping early: the source may wait for bytes a refused client never sends.
  void pipeline(Readable.from(rest()), gunzip).catch(() => undefined);
  let total = 0;
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limits.maxUnpackedBytes) throw tooBig(limits);
      if (total > RATIO_GRACE_BYTES && total > counter.bytes * limits.maxRatio) {
        throw KilnException.badRequest(
          `the gzip stream expands more than ${limits.maxRatio}-fold (a gzip bomb?); KILN_UPLOAD_MAX_RATIO allows ${limits.maxRatio}`,
        );
      }
      yield chunk;
    }
  } finally {
    gunzip.destroy();
  }
}

async function* sized(
  input: AsyncIterable<Buffer>,
  maxBytes: number,
  counter: { bytes: number },
): AsyncGenerator<Buffer> {
  for await (const chunk of input) {
    counter.bytes += chunk.length;
    if (counter.bytes > maxBytes) {
      throw KilnException.tooLarge(
        `the upload is larger than ${maxBytes} bytes (KILN_UPLOAD_MAX_BYTES)`,
      );
    }
    yield chunk;
  }
}

function tooBig(limits: UploadLimits): KilnException {
  return KilnException.tooLarge(
    `the tarball is larger than ${limits.maxUnpackedBytes} bytes un-gzipped (KILN_UPLOAD_MAX_UNPACKED_BYTES)`,
  );
}

function escapes(header: TarHeader): KilnException {
  return KilnException.badRequest(
    `symlink "${header.path}" -> "${header.linkPath}" points outside the archive`,
  );
}

/** An entry's path, normalized; absolute paths and `..` are refused. */
function archivePath(raw: string, what: string): string {
  if (raw.startsWith('/')) throw KilnException.badRequest(`${what} has an absolute path`);
  const parts = raw.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) {
    throw KilnException.badRequest(`${what} has a ".." path (it would escape the archive)`);
  }
  if (parts.length === 0) throw KilnException.badRequest(`${what} has an empty path`);
  // eslint-disable-next-line no-control-regex -- control characters are what is refused
  if (/[\u0000-\u001f]/.test(raw)) {
    throw KilnException.badRequest(`${what} has control characters in its path`);
  }
  return parts.join('/');
}

/** The file at `path`, following links inside the archive. */
function fileAt(entries: Map<string, Entry>, rawPath: string, what: string): SpooledBlob {
  let path = archivePath(rawPath, what);
  for (let hops = 0; hops < 16; hops++) {
    const entry = entries.get(path);
    if (!entry) throw KilnException.badRequest(`${what} "${rawPath}" is not in the tarball`);
    if (entry.kind === 'file') return entry.blob;
    if (entry.kind === 'directory') {
      throw KilnException.badRequest(`${what} "${rawPath}" is a directory`);
    }
    path = entry.target;
  }
  throw KilnException.badRequest(`${what} "${rawPath}" is a loop of links`);
}

async function readJson(blob: SpooledBlob, what: string): Promise<unknown> {
  if (blob.size > MAX_JSON_BYTES) {
    throw KilnException.badRequest(`${what} is larger than ${MAX_JSON_BYTES} bytes`);
  }
  try {
    return JSON.parse(await readFile(blob.file, 'utf8')) as unknown;
  } catch (error) {
    throw KilnException.badRequest(`${what} is not valid JSON: ${(error as Error).message}`);
  }
}

async function checkImage(
  entries: Map<string, Entry>,
  limits: UploadLimits,
): Promise<Omit<ImageArchive, 'dispose'>> {
  if (!entries.has('manifest.json')) {
    throw KilnException.badRequest(
      'the tarball has no manifest.json: upload the output of `docker save` (one image)',
    );
  }
  const manifest = await readJson(
    fileAt(entries, 'manifest.json', 'manifest.json'),
    'manifest.json',
  );
  if (!Array.isArray(manifest)) {
    throw KilnException.badRequest('manifest.json must be a JSON array');
  }
  if (manifest.length !== 1) {
    throw KilnException.badRequest(
      `the tarball holds ${manifest.length} images; upload exactly one (\`docker save\` one image)`,
    );
  }
  const image = manifest[0] as { Config?: unknown; Layers?: unknown };
  if (
    typeof image?.Config !== 'string' ||
    !Array.isArray(image.Layers) ||
    !image.Layers.every((layer): layer is string => typeof layer === 'string')
  ) {
    throw KilnException.badRequest('manifest.json must name the image\'s "Config" and "Layers"');
  }
  const layerPaths = image.Layers;
  if (layerPaths.length === 0) throw KilnException.badRequest('the image has no layers');
  if (layerPaths.length > limits.maxLayers) {
    throw KilnException.badRequest(
      `the image has ${layerPaths.length} layers; at most ${limits.maxLayers} are allowed (KILN_UPLOAD_MAX_LAYERS)`,
    );
  }
  const config = fileAt(entries, image.Config, 'the image config');
  // docker save names the config after its digest ("<hex>.json", or "blobs/sha256/<hex>").
  const named = /(?:^|\/)([a-f0-9]{64})(?:\.json)?$/.exec(image.Config);
  if (named && `sha256:${named[1]}` !== config.digest) {
    throw KilnException.badRequest(
      `digest mismatch: the image config "${image.Config}" hashes to ${config.digest}`,
    );
  }
  const parsed = (await readJson(config, 'the image config')) as {
    rootfs?: { type?: unknown; diff_ids?: unknown };
  } | null;
  const diffIds = parsed?.rootfs?.diff_ids;
  if (
    parsed?.rootfs?.type !== 'layers' ||
    !Array.isArray(diffIds) ||
    !diffIds.every((id) => typeof id === 'string' && SHA256.test(id))
  ) {
    throw KilnException.badRequest('the image config has no valid rootfs.diff_ids');
  }
  if (diffIds.length !== layerPaths.length) {
    throw KilnException.badRequest(
      `the image config lists ${diffIds.length} layers, manifest.json ${layerPaths.length}`,
    );
  }
  const layers = layerPaths.map((path, index) => {
    const layer = fileAt(entries, path, `layer ${index + 1}`);
    if (layer.digest !== diffIds[index]) {
      throw KilnException.badRequest(
        `digest mismatch: layer ${index + 1} ("${path}") hashes to ${layer.digest}, the image config says ${String(diffIds[index])}`,
      );
    }
    return layer;
  });
  // The layers are uncompressed tars: together, about what the engine stores once pulled.
  const imageBytes = layers.reduce((sum, layer) => sum + layer.size, 0);
  if (limits.maxImageBytes !== undefined && imageBytes > limits.maxImageBytes) {
    throw KilnException.tooLarge(
      `the image is ${imageBytes} bytes (its layers, un-gzipped), over this server's cap of ${limits.maxImageBytes} bytes (KILN_IMAGE_MAX_BYTES): no task could run it`,
    );
  }
  return { config, layers };
}

/** Content types the raw tarball upload takes (none given counts as bytes). */
export const TARBALL_TYPES = [
  'application/x-tar',
  'application/tar',
  'application/gzip',
  'application/x-gzip',
  'application/octet-stream',
];

/** A 415 for an upload whose `Content-Type` is not a tarball's; none given is fine. */
export function tarballTypeProblem(contentType: string | undefined): KilnException | undefined {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (type === '' || TARBALL_TYPES.includes(type)) return undefined;
  return new KilnException(
    ErrorCode.UnsupportedMediaType,
    `send the tarball itself as the body (Content-Type ${TARBALL_TYPES.join(', ')}), not ${type}`,
  );
}
