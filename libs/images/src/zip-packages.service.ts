import { Inject, Injectable, Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Code, CodeSpec, CodesService } from '@kiln/codes';
import { KilnException } from '@kiln/common';
import { KILN_CONFIG, KilnConfig, PlatformRegistry } from '@kiln/config';
import { zipRepository } from './image-names';
import { platformRegistryClient, RegistryError } from './registry-client';
import { checkZip, ZipFormatError } from './zip-reader';

/** A zip code package, spooled on disk and checked; `dispose()` removes the spool. */
export interface ZipPackage {
  file: string;
  size: number;
  /** `sha256:<hex>` of the zip's bytes. */
  digest: string;
  dispose(): Promise<void>;
}

/** The zip is an OCI artifact: an empty config and the zip as its one layer. */
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const EMPTY_CONFIG = Buffer.from('{}');
const EMPTY_CONFIG_TYPE = 'application/vnd.oci.empty.v1+json';
export const ZIP_TYPE = 'application/zip';

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * Zip code packages (issue 20), the API's side: a zip is spooled (capped by `KILN_ZIP_MAX_BYTES`) and checked
 * whole (`checkZip`) before anything is stored; then it is pushed as a blob to the project's own
 * zip repository in the platform registry, tagged by its digest under a small manifest (so that
 * the registry's garbage collection keeps it), and recorded by digest on a new code revision.
 */
@Injectable()
export class ZipPackagesService {
  private readonly logger = new Logger(ZipPackagesService.name);

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly codes: CodesService,
  ) {}

  /** Spools and checks a zip; the caller registers it, then disposes of it. 400/413 when refused. */
  async receive(input: Readable, declaredLength = NaN): Promise<ZipPackage> {
    const { maxBytes } = this.config.zips;
    try {
      this.registry();
      if (declaredLength > maxBytes) throw zipTooLarge(maxBytes);
    } catch (error) {
      input.resume();
      throw error;
    }
    await mkdir(this.config.uploads.spoolDir, { recursive: true });
    const dir = await mkdtemp(join(this.config.uploads.spoolDir, 'zip-'));
    const dispose = () => rm(dir, { recursive: true, force: true });
    const file = join(dir, 'package.zip');
    const hash = createHash('sha256');
    let size = 0;
    // Read through a pipe, so that when reading stops early the input can be unhooked and drained:
    // the client of a refused upload still gets its answer.
    const chunks = new PassThrough({ highWaterMark: 1024 * 1024 });
    const cutOff = () => {
      if (!input.readableEnded) chunks.destroy(KilnException.badRequest('the upload was cut off'));
    };
    input.once('error', cutOff).once('close', cutOff).pipe(chunks);
    try {
      const counted = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          size += chunk.length;
          if (size > maxBytes) return done(zipTooLarge(maxBytes));
          hash.update(chunk);
          done(null, chunk);
        },
      });
      await pipeline(chunks, counted, createWriteStream(file, { mode: 0o600 }));
      await checkZip(file, this.config.zips);
      return { file, size, digest: `sha256:${hash.digest('hex')}`, dispose };
    } catch (error) {
      input.unpipe(chunks);
      chunks.destroy();
      input.resume();
      await dispose();
      if (error instanceof ZipFormatError) throw KilnException.badRequest(error.message);
      throw error;
    }
  }

  /** Registers `spec` (a whole registration, its image set) with the zip as its package. */
  async register(projectId: string, spec: CodeSpec, zip: ZipPackage): Promise<Code> {
    await this.publish(projectId, zip);
    return this.codes.register(projectId, { ...spec, zipDigest: zip.digest });
  }

  /**
   * The bytes of the project's zip `digest`, from its own repository: a digest of another
   * project's zip is not found there (the registry links blobs per repository).
   */
  async open(projectId: string, digest: string): Promise<Readable> {
    const registry = this.registry();
    try {
      return await platformRegistryClient(registry).openBlob(zipRepository(projectId), digest);
    } catch (error) {
      if (!(error instanceof RegistryError)) throw error;
      if (error.status === 404) throw KilnException.notFound('The zip is not in the registry');
      throw KilnException.unavailable(`Could not read the zip from the registry: ${error.message}`);
    }
  }

  private async publish(projectId: string, zip: ZipPackage): Promise<void> {
    const registry = this.registry();
    const repository = zipRepository(projectId);
    const client = platformRegistryClient(registry);
    const configDigest = sha256(EMPTY_CONFIG);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MANIFEST_TYPE,
        config: { mediaType: EMPTY_CONFIG_TYPE, size: EMPTY_CONFIG.length, digest: configDigest },
        layers: [{ mediaType: ZIP_TYPE, size: zip.size, digest: zip.digest }],
      }),
    );
    try {
      if (!(await client.hasBlob(repository, configDigest))) {
        await client.pushBlob(repository, configDigest, EMPTY_CONFIG, EMPTY_CONFIG.length);
      }
      if (!(await client.hasBlob(repository, zip.digest))) {
        await client.pushBlob(repository, zip.digest, zip.file, zip.size);
      }
      await client.putManifest(repository, zipTag(zip.digest), manifest, MANIFEST_TYPE);
    } catch (error) {
      if (!(error instanceof RegistryError)) throw error;
      this.logger.warn(`push to ${registry.host}/${repository} failed: ${error.message}`);
      throw KilnException.unavailable(
        `Could not store the zip in the platform registry: ${error.message}`,
      );
    }
  }

  private registry(): PlatformRegistry {
    if (!this.config.registry) {
      throw KilnException.unavailable(
        'Zip uploads are off on this server: no platform registry is configured (REGISTRY_URL)',
      );
    }
    return this.config.registry;
  }
}

/** The tag that keeps a zip's manifest (and so the zip) in the registry: `zip-<hex>`. */
export function zipTag(digest: string): string {
  return `zip-${digest.slice('sha256:'.length)}`;
}

function zipTooLarge(maxBytes: number): KilnException {
  return KilnException.tooLarge(`the zip is larger than ${maxBytes} bytes (KILN_ZIP_MAX_BYTES)`);
}
