import { Inject, Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { inflateZip, platformRegistryClient, readZipDirectory, zipRepository } from '@kiln/images';

const DIGEST = /^sha256:([a-f0-9]{64})$/;

/**
 * Zip code packages on a worker (issue 20): a revision's zip is fetched from its project's own
 * repository in the platform registry once per host (cached by digest, the digest recomputed from
 * the bytes), and unpacked into a task's directory under the same checks as at upload (names,
 * links, devices, entry count, sizes held while inflating), so a zip that got past an older API
 * still cannot write outside the directory.
 */
@Injectable()
export class ZipPackages {
  private readonly fetching = new Map<string, Promise<string>>();

  constructor(@Inject(KILN_CONFIG) private readonly config: KilnConfig) {}

  /** The cached zip of `digest`, fetched from the project's repository when missing. */
  async fetch(projectId: string, digest: string, signal?: AbortSignal): Promise<string> {
    const hex = DIGEST.exec(digest)?.[1];
    if (!hex) throw new Error(`"${digest}" is not a sha256 digest`);
    const file = join(this.config.zips.cacheDir, `${hex}.zip`);
    if (
      await stat(file).then(
        (found) => found.isFile(),
        () => false,
      )
    ) {
      return file;
    }
    let pending = this.fetching.get(hex);
    if (!pending) {
      pending = this.download(projectId, digest, file, signal).finally(() =>
        this.fetching.delete(hex),
      );
      this.fetching.set(hex, pending);
    }
    return pending;
  }

  /**
   * Unpacks the zip into `dir` (made here, 0755): directories 0755, files 0644, or 0755 when the
   * zip marks them executable; owned by the worker, readable by the task's user.
   */
  async unpack(zip: string, dir: string): Promise<void> {
    const limits = this.config.zips;
    const root = resolve(dir);
    await mkdir(root, { mode: 0o755 });
    const within = (path: string) => {
      const target = resolve(root, path);
      if (!target.startsWith(root + sep)) throw new Error(`entry "${path}" escapes the directory`);
      return target;
    };
    const entries = await readZipDirectory(zip, limits);
    for (const entry of entries.filter((candidate) => candidate.directory)) {
      await mkdir(within(entry.path), { recursive: true, mode: 0o755 });
    }
    await inflateZip(zip, entries, limits, async (entry): Promise<Writable> => {
      const target = within(entry.path);
      await mkdir(resolve(target, '..'), { recursive: true, mode: 0o755 });
      // `wx`: a fresh file, never one that is there already (nor a link someone made).
      const handle = await open(target, 'wx', entry.mode & 0o111 ? 0o755 : 0o644);
      return handle.createWriteStream();
    });
  }

  private async download(
    projectId: string,
    digest: string,
    file: string,
    signal?: AbortSignal,
  ): Promise<string> {
    const registry = this.config.registry;
    if (!registry) throw new Error('no platform registry is configured (REGISTRY_URL)');
    await mkdir(this.config.zips.cacheDir, { recursive: true, mode: 0o700 });
    const partial = `${file}.${process.pid}.${Date.now()}.part`;
    const hash = createHash('sha256');
    const { maxBytes } = this.config.zips;
    let size = 0;
    try {
      const body = await platformRegistryClient(registry, { signal, timeoutMs: 60_000 }).openBlob(
        zipRepository(projectId),
        digest,
      );
      const counted = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          size += chunk.length;
          if (size > maxBytes) return done(new Error(`the zip is larger than ${maxBytes} bytes`));
          hash.update(chunk);
          done(null, chunk);
        },
      });
      await pipeline(body, counted, createWriteStream(partial, { mode: 0o600 }), { signal });
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== digest) throw new Error(`the registry answered bytes of ${got}, not ${digest}`);
      await rename(partial, file);
      return file;
    } finally {
      await rm(partial, { force: true });
    }
  }
}
