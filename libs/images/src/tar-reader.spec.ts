import { readTar, TarHeader } from './tar-reader';

function header(path: string, size: number, type = '0', link = ''): Buffer {
  const block = Buffer.alloc(512, 0);
  block.write(path, 0, 100, 'utf8');
  block.write('0000644\0', 100, 8, 'ascii');
  block.write(size.toString(8).padStart(11, '0') + '\0', 124, 12, 'ascii');
  block.fill(' ', 148, 156);
  block.write(type, 156, 1, 'ascii');
  block.write(link, 157, 100, 'utf8');
  block.write('ustar\u000000', 257, 8, 'ascii');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return block;
}

function entry(path: string, content: Buffer | string, type = '0', link = ''): Buffer {
  const body = Buffer.from(content);
  return Buffer.concat([
    header(path, body.length, type, link),
    body,
    Buffer.alloc((512 - (body.length % 512)) % 512),
  ]);
}

function pax(records: Record<string, string>): Buffer {
  const text = Object.entries(records)
    .map(([key, value]) => {
      const line = ` ${key}=${value}\n`;
      let length = line.length + 1;
      while (`${length}${line}`.length !== length) length++;
      return `${length}${line}`;
    })
    .join('');
  return entry('PaxHeaders/x', text, 'x');
}

/** Reads `archive` fed in chunks of `chunkSize` bytes. */
async function read(archive: Buffer, chunkSize: number) {
  const seen: { header: TarHeader; content: string }[] = [];
  async function* chunks() {
    for (let at = 0; at < archive.length; at += chunkSize)
      yield archive.subarray(at, at + chunkSize);
  }
  await readTar(chunks(), async (header) => {
    const parts: Buffer[] = [];
    const item = { header, content: '' };
    seen.push(item);
    return {
      write: async (chunk) => void parts.push(Buffer.from(chunk)),
      end: async () => void (item.content = Buffer.concat(parts).toString()),
    };
  });
  return seen;
}

describe('readTar', () => {
  const long = `${'d'.repeat(120)}/layer.tar`;
  const archive = Buffer.concat([
    entry('a/', '', '5'),
    entry('a/file', 'hello'),
    pax({ path: long, size: '3' }),
    entry('ignored-name', 'xyz'),
    entry('link', '', '2', 'a/file'),
    entry('empty', ''),
    Buffer.alloc(1024),
    Buffer.from('trailing bytes are ignored'),
  ]);

  it.each([1, 7, 512, 513, 100_000])('reads every entry, in chunks of %i bytes', async (size) => {
    const seen = await read(archive, size);
    expect(
      seen.map(({ header, content }) => [header.path, header.type, content, header.linkPath]),
    ).toEqual([
      ['a/', 'directory', '', ''],
      ['a/file', 'file', 'hello', ''],
      [long, 'file', 'xyz', ''],
      ['link', 'symlink', '', 'a/file'],
      ['empty', 'file', '', ''],
    ]);
  });

  it('refuses what is not a tar, and a truncated one', async () => {
    await expect(read(Buffer.from('PK\u0003\u0004'.repeat(200)), 512)).rejects.toThrow(
      /not a tar archive/,
    );
    await expect(read(Buffer.alloc(0), 512)).rejects.toThrow(/not a tar archive/);
    await expect(read(archive.subarray(0, 1024 + 100), 512)).rejects.toThrow(/truncated/);
    const corrupt = Buffer.from(archive);
    corrupt[512 + 10] ^= 0xff; // inside the second header
    await expect(read(corrupt, 512)).rejects.toThrow(/corrupt tar header at offset 512/);
  });
});
