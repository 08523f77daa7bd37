import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkZip, looksLikeZip, ZipFormatError } from './zip-reader';
import { deflateBomb, FixtureEntry, zipOf } from './zip.fixture';

const LIMITS = { maxEntries: 10, maxUnpackedBytes: 1024 * 1024 };
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'zip-reader-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

let n = 0;
async function check(zip: Buffer, limits = LIMITS) {
  const file = join(dir, `${n++}.zip`);
  await writeFile(file, zip);
  return checkZip(file, limits);
}

async function refusal(entries: FixtureEntry[] | Buffer, limits = LIMITS): Promise<string> {
  const error = await check(Buffer.isBuffer(entries) ? entries : zipOf(entries), limits).then(
    () => null,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ZipFormatError);
  return (error as Error).message;
}

describe('checkZip', () => {
  it('reads a plain package: files, directories, modes, stored and deflated', async () => {
    const entries = await check(
      zipOf([
        { name: 'bin/', mode: 0o040755 },
        { name: 'bin/run.sh', content: 'echo hi\n', mode: 0o100755 },
        { name: './hello.js', content: 'console.log(1)\n'.repeat(100), stored: true },
      ]),
    );
    expect(
      entries.map(({ path, directory, mode, size }) => ({ path, directory, mode, size })),
    ).toEqual([
      { path: 'bin', directory: true, mode: 0o755, size: 0 },
      { path: 'bin/run.sh', directory: false, mode: 0o755, size: 8 },
      { path: 'hello.js', directory: false, mode: 0o644, size: 1500 },
    ]);
  });

  it('knows a zip by its first bytes', () => {
    expect(looksLikeZip(zipOf([{ name: 'a' }]))).toBe(true);
    expect(looksLikeZip(zipOf([]))).toBe(true);
    expect(looksLikeZip(Buffer.from('\x1f\x8b\x08\x00'))).toBe(false);
    expect(looksLikeZip(Buffer.from('PK'))).toBe(false);
  });

  it.each([
    ['../evil.sh', /escapes the directory/],
    ['a/../../evil.sh', /escapes the directory/],
    ['/etc/passwd', /absolute/],
    ['C:/evil', /absolute/],
    ['a\\..\\evil', /non-portable/],
  ])('refuses the entry %s', async (name, message) => {
    expect(await refusal([{ name, content: 'x' }])).toMatch(message);
  });

  it('refuses symlinks, devices and FIFOs', async () => {
    expect(await refusal([{ name: 'link', content: '/etc', mode: 0o120777 }])).toMatch(
      /symbolic link/,
    );
    expect(await refusal([{ name: 'null', mode: 0o020666 }])).toMatch(/device file/);
    expect(await refusal([{ name: 'pipe', mode: 0o010644 }])).toMatch(/device file/);
  });

  it('refuses duplicates and a file used as a directory', async () => {
    expect(await refusal([{ name: 'a' }, { name: './a' }])).toMatch(/appears twice/);
    expect(await refusal([{ name: 'a', content: 'x' }, { name: 'a/b' }])).toMatch(/a file/);
  });

  it('refuses more entries than the cap, from the directory', async () => {
    const entries = Array.from({ length: 11 }, (_, i) => ({ name: `f${i}` }));
    expect(await refusal(entries)).toMatch(/more than 10 entries/);
  });

  it('refuses a bomb that admits its size, from the directory', async () => {
    expect(await refusal([{ name: 'big', content: 'x', claimedSize: 2 ** 32 - 1 }])).toMatch(
      /unpacks to more than 1048576 bytes/,
    );
  });

  it('refuses a bomb that lies about its size, while inflating', async () => {
    const bomb = Buffer.alloc(8 * 1024 * 1024);
    expect(await refusal([{ name: 'bomb', content: bomb, claimedSize: 10 }])).toMatch(
      /inflates to more than the 10 bytes it claims/,
    );
  });

  it('refuses a 1 MB zip inflating to 1 GiB and claiming 1 KiB, after that KiB', async () => {
    const entries = [{ name: 'gig', deflated: deflateBomb(1024), claimedSize: 1024 }];
    expect(await refusal(entries)).toMatch(/inflates to more than the 1024 bytes it claims/);
  });

  it('refuses many honest entries that together pass the cap', async () => {
    const part = Buffer.alloc(300 * 1024);
    const entries = [0, 1, 2, 3].map((i) => ({ name: `p${i}`, content: part }));
    expect(await refusal(entries)).toMatch(/unpacks to more than/);
  });

  it('refuses an entry whose bytes do not match its CRC or claimed size', async () => {
    const zip = zipOf([{ name: 'a', content: 'hello', stored: true }]);
    zip[30 + 1] = 'X'.charCodeAt(0); // the stored byte after the name
    expect(await refusal(zip)).toMatch(/does not match its CRC/);
    expect(await refusal([{ name: 'short', content: 'abc', claimedSize: 5 }])).toMatch(
      /holds 3 bytes, not the 5/,
    );
  });

  it('refuses entries sharing bytes (an overlapping bomb)', async () => {
    const zip = zipOf([
      { name: 'a', content: 'one' },
      { name: 'b', content: 'two' },
    ]);
    const directory = zip.length - 22 - 2 * (46 + 1);
    zip.writeUInt32LE(0, directory + 46 + 1 + 42); // b's local header offset → a's
    expect(await refusal(zip)).toMatch(/overlaps another/);
  });

  it.each([
    ['text', Buffer.from('just some text, not a zip at all')],
    ['empty', Buffer.alloc(0)],
    ['truncated', zipOf([{ name: 'a', content: 'abc' }]).subarray(0, 40)],
  ])('refuses a non-zip (%s)', async (_label, bytes) => {
    expect(await refusal(bytes)).toMatch(/not a zip|truncated|out of bounds/);
  });

  it('refuses encrypted entries and unknown methods', async () => {
    const zip = zipOf([{ name: 'a', content: 'abc' }]);
    const central = zip.length - 22 - 47;
    const encrypted = Buffer.from(zip);
    encrypted.writeUInt16LE(0x0801, central + 8);
    expect(await refusal(encrypted)).toMatch(/encrypted/);
    const bzip = Buffer.from(zip);
    bzip.writeUInt16LE(12, central + 10);
    expect(await refusal(bzip)).toMatch(/compression method 12/);
  });
});
