import { readTar, TarHeader } from './tar-reader';
import { tarEntry } from './tar.fixture';

function pax(records: Record<string, string>): Buffer {
  const text = Object.entries(records)
    .map(([key, value]) => {
      const line = ` ${key}=${value}\n`;
      let length = line.length + 1;
      while (`${length}${line}`.length !== length) length++;
      return `${length}${line}`;
    })
    .join('');
  return tarEntry('PaxHeaders/x', text, 'x');
}

/** Reads `archive` fed in chunks of `chunkSize` bytes. */
async function read(archive: Buffer, chunkSize: number) {
  const seen: { header: TarHeader; content: string }[] = [];
  async function* chunks() {
    for (let at = 0; at < archive.length; at += chunkSize) {
      yield archive.subarray(at, at + chunkSize);
    }
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
    tarEntry('a/', '', '5'),
    tarEntry('a/file', 'hello'),
    pax({ path: long, size: '3' }),
    tarEntry('ignored-name', 'xyz'),
    tarEntry('link', '', '2', 'a/file'),
    tarEntry('empty', ''),
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
