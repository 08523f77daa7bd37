import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { ErrorCode } from '@kiln/common';
import { readImageArchive, tarballTypeProblem, UploadLimits } from './image-archive';
import { tarEntry } from './tar.fixture';

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe('readImageArchive', () => {
  let spool: string;
  let limits: UploadLimits;
  beforeEach(() => {
    spool = mkdtempSync(join(tmpdir(), 'kiln-archive-spec-'));
    limits = {
      maxBytes: 1024 * 1024,
      maxUnpackedBytes: 1024 * 1024,
      maxRatio: 100,
      maxLayers: 10,
      maxEntries: 100,
      spoolDir: spool,
    };
  });
  afterEach(() => rmSync(spool, { recursive: true, force: true }));

  const layer = tarEntry('etc/hello', 'hello\n');
  const config = JSON.stringify({
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: [`sha256:${sha(layer)}`, `sha256:${sha(layer)}`] },
  });
  // The shape of a `docker save` from Docker 20.10: a layer repeated through a relative symlink,
  // the config named after its digest, and a hard link for good measure.
  const archive = Buffer.concat([
    tarEntry('aaa/', '', '5'),
    tarEntry('aaa/layer.tar', layer),
    tarEntry('bbb/', '', '5'),
    tarEntry('bbb/layer.tar', '', '2', '../aaa/layer.tar'),
    tarEntry(`${sha(config)}.json`, config),
    tarEntry('copy.json', '', '1', `${sha(config)}.json`),
    tarEntry(
      'manifest.json',
      JSON.stringify([
        {
          Config: 'copy.json',
          RepoTags: ['evil/tag:1'],
          Layers: ['aaa/layer.tar', 'bbb/layer.tar'],
        },
      ]),
    ),
    Buffer.alloc(1024),
  ]);

  it.each([
    ['plain', archive],
    ['gzip', gzipSync(archive)],
  ])('reads a %s docker save with linked layers, digests recomputed', async (_kind, bytes) => {
    const image = await readImageArchive(Readable.from([bytes]), limits);
    try {
      expect(image.config.digest).toBe(`sha256:${sha(config)}`);
      expect(image.layers.map((l) => l.digest)).toEqual([
        `sha256:${sha(layer)}`,
        `sha256:${sha(layer)}`,
      ]);
      expect(readFileSync(image.layers[1].file)).toEqual(layer);
    } finally {
      await image.dispose();
    }
    expect(readdirSync(spool)).toEqual([]);
  });

  it('refuses a config whose bytes do not match the digest in its name, leaving no spool', async () => {
    const forged = Buffer.concat([
      tarEntry('aaa/layer.tar', layer),
      tarEntry(`${'1'.repeat(64)}.json`, config),
      tarEntry(
        'manifest.json',
        JSON.stringify([{ Config: `${'1'.repeat(64)}.json`, Layers: ['aaa/layer.tar'] }]),
      ),
      Buffer.alloc(1024),
    ]);
    await expect(readImageArchive(Readable.from([forged]), limits)).rejects.toThrow(
      /digest mismatch: the image config/,
    );
    expect(readdirSync(spool)).toEqual([]);
  });

  it('enforces the entry and layer caps', async () => {
    await expect(
      readImageArchive(Readable.from([archive]), { ...limits, maxEntries: 3 }),
    ).rejects.toThrow(/more than 3 entries/);
    await expect(
      readImageArchive(Readable.from([archive]), { ...limits, maxLayers: 1 }),
    ).rejects.toThrow(/2 layers; at most 1/);
    expect(readdirSync(spool)).toEqual([]);
  });

  it('refuses an image whose layers add up to more than KILN_IMAGE_MAX_BYTES (413)', async () => {
    const imageBytes = 2 * layer.length;
    await expect(
      readImageArchive(Readable.from([archive]), { ...limits, maxImageBytes: imageBytes - 1 }),
    ).rejects.toMatchObject({
      code: ErrorCode.PayloadTooLarge,
      message: expect.stringContaining(
        `the image is ${imageBytes} bytes (its layers, un-gzipped), over this server's cap of ${imageBytes - 1} bytes (KILN_IMAGE_MAX_BYTES)`,
      ),
    });
    expect(readdirSync(spool)).toEqual([]);
    const image = await readImageArchive(Readable.from([archive]), {
      ...limits,
      maxImageBytes: imageBytes,
    });
    await image.dispose();
  });
});

describe('tarballTypeProblem', () => {
  it('takes a tarball type, any parameters, or none; refuses the rest as an unsupported media type (415)', () => {
    for (const type of [undefined, '', 'application/x-tar', 'application/gzip; charset=binary']) {
      expect(tarballTypeProblem(type)).toBeUndefined();
    }
    const problem = tarballTypeProblem('multipart/form-data; boundary=x');
    expect(problem?.code).toBe(ErrorCode.UnsupportedMediaType);
    expect(problem?.message).toContain('not multipart/form-data');
  });
});
