/**
 * A minimal ustar writer for the handful of small files Kiln copies into a task container
 * (payload, config, the task directory). Sizes here are at most a few hundred KiB.
 */
export interface TarEntry {
  path: string;
  /** Absent for a directory. */
  content?: Buffer;
  mode: number;
  uid: number;
  gid: number;
}

export function tarArchive(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const isDir = entry.content === undefined;
    const body = entry.content ?? Buffer.alloc(0);
    const header = Buffer.alloc(512, 0);
    const name = isDir && !entry.path.endsWith('/') ? `${entry.path}/` : entry.path;
    if (Buffer.byteLength(name) > 100) throw new Error(`tar path too long: ${name}`);
    header.write(name, 0, 100, 'utf8');
    writeOctal(header, 100, 8, entry.mode);
    writeOctal(header, 108, 8, entry.uid);
    writeOctal(header, 116, 8, entry.gid);
    writeOctal(header, 124, 12, body.length);
    writeOctal(header, 136, 12, Math.floor(Date.now() / 1000));
    header.fill(' ', 148, 156);
    header.write(isDir ? '5' : '0', 156, 1, 'ascii');
    header.write('ustar\u0000', 257, 6, 'ascii');
    header.write('00', 263, 2, 'ascii');
    let sum = 0;
    for (const byte of header) sum += byte;
    writeOctal(header, 148, 7, sum);
    blocks.push(header, body);
    const padding = (512 - (body.length % 512)) % 512;
    if (padding) blocks.push(Buffer.alloc(padding, 0));
  }
  blocks.push(Buffer.alloc(1024, 0));
  return Buffer.concat(blocks);
}

function writeOctal(header: Buffer, offset: number, length: number, value: number): void {
  header.write(value.toString(8).padStart(length - 1, '0') + '\u0000', offset, length, 'ascii');
}
