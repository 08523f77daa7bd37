import { constants, crc32, deflateRawSync } from 'node:zlib';

/**
 * Hand-made zip archives for the zip specs and suites: any name, Unix mode (symlinks, devices),
 * method and claimed size, so that the reader can be shown what a hostile zip holds. Test code
 * only (excluded from the build, like the specs).
 */
export interface FixtureEntry {
  name: string;
  content?: Buffer | string;
  /** Unix mode (type and permission bits) in the external attributes; default a 0644 file. */
  mode?: number;
  /** Deflate (default) or store. */
  stored?: boolean;
  /** The uncompressed size the headers claim, when it should lie. */
  claimedSize?: number;
  /** Deflated bytes to store as they are (e.g. {@link deflateBomb}), instead of `content`'s. */
  deflated?: Buffer;
}

/**
 * A raw deflate stream that inflates to `mib` MiB of zeros in about 1 KB per MiB, made in
 * milliseconds: one fully flushed (dictionary-reset, byte-aligned) block of a MiB of zeros,
 * repeated, then an empty final block.
 */
export function deflateBomb(mib: number): Buffer {
  const block = deflateRawSync(Buffer.alloc(1024 * 1024), { finishFlush: constants.Z_FULL_FLUSH });
  return Buffer.concat([...Array<Buffer>(mib).fill(block), deflateRawSync(Buffer.alloc(0))]);
}

export function zipOf(entries: FixtureEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name, 'utf8');
    const content = Buffer.from(entry.content ?? '');
    const data = entry.deflated ?? (entry.stored ? content : deflateRawSync(content));
    const size = entry.claimedSize ?? content.length;
    const crc = crc32(content);
    const method = entry.stored ? 0 : 8;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made on Unix
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((entry.mode ?? 0o100644) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, data);
    centrals.push(central, name);
    offset += local.length + name.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}
