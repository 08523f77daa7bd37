import { Inject, Injectable, Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Code, CodeSpec, CodesService } from '@kiln/codes';
import { KilnException } from '@kiln/common';
import { KILN_CONFIG, KilnConfig, PlatformRegistry } from '@kiln/config';
import { ImageArchive, readImageArchive } from './image-archive';
import { uploadRepository } from './image-names';
import { platformRegistryClient, RegistryError } from './registry-client';

const MANIFEST_TYPE = 'application/vnd.docker.distribution.manifest.v2+json';
const CONFIG_TYPE = 'application/vnd.docker.container.image.v1+json';
/** `docker save` layers are uncompressed tars; they are pushed as they are (Docker pulls them). */
const LAYER_TYPE = 'application/vnd.docker.image.rootfs.diff.tar';

export interface UploadedCode {
  code: Code;
  /** `<registry>/kiln/<project id>/<name>@sha256:<hex>` */
  image: string;
}

/**
 * Uploaded images: a `docker save` tarball is spooled and checked (`readImageArchive`), pushed to
 * the platform registry under the project's own repository, and recorded by digest on a new code
 * revision. Nothing is pushed unless every check passed; the spool is removed either way.
 */
@Injectable()
export class ImageUploadsService {
  private readonly logger = new Logger(ImageUploadsService.name);

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly codes: CodesService,
  ) {}

  /**
   * Reads and checks a tarball; the caller publishes it, then disposes of it. A declared length
   * past the cap is refused before a byte is read (the rest of the body is drained, not stored).
   */
  async receive(input: Readable, declaredLength = NaN): Promise<ImageArchive> {
    try {
      this.registry();
      const { maxBytes } = this.config.uploads;
      if (declaredLength > maxBytes) {
        throw KilnException.tooLarge(
          `the upload is larger than ${maxBytes} bytes (KILN_UPLOAD_MAX_BYTES)`,
        );
      }
    } catch (error) {
      input.resume();
      throw error;
    }
    return readImageArchive(input, {
      ...this.config.uploads,
      maxImageBytes: this.config.images.maxBytes,
    });
  }

  /** Registers `spec` (a whole registration) with the uploaded image. */
  async register(projectId: string, spec: CodeSpec, archive: ImageArchive): Promise<UploadedCode> {
    const image = await this.publish(projectId, spec.name, archive);
    return { code: await this.codes.register(projectId, { ...spec, image }), image };
  }

  /** A new revision of code `defaults.name` with the uploaded image, other settings unchanged. */
  async replaceImage(
    projectId: string,
    defaults: CodeSpec,
    archive: ImageArchive,
  ): Promise<UploadedCode> {
    const image = await this.publish(projectId, defaults.name, archive);
    return { code: await this.codes.registerImage(projectId, defaults, image), image };
  }

  private async publish(
    projectId: string,
    codeName: string,
    archive: ImageArchive,
  ): Promise<string> {
    const registry = this.registry();
    const repository = uploadRepository(projectId, codeName);
    const client = platformRegistryClient(registry);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MANIFEST_TYPE,
        config: {
          mediaType: CONFIG_TYPE,
          size: archive.config.size,
          digest: archive.config.digest,
        },
        layers: archive.layers.map((layer) => ({
          mediaType: LAYER_TYPE,
          size: layer.size,
          digest: layer.digest,
        })),
      }),
    );
    const digest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
    try {
      const pushed = new Set<string>();
      for (const blob of [archive.config, ...archive.layers]) {
        if (pushed.has(blob.digest)) continue;
        pushed.add(blob.digest);
        if (!(await client.hasBlob(repository, blob.digest))) {
          await client.pushBlob(repository, blob.digest, blob.file, blob.size);
        }
      }
      const stored = await client.putManifest(repository, 'latest', manifest, MANIFEST_TYPE);
      if (stored && stored !== digest) {
        throw new RegistryError(`the registry stored the manifest as ${stored}, not ${digest}`);
      }
    } catch (error) {
      if (!(error instanceof RegistryError)) throw error;
      this.logger.warn(`push to ${registry.host}/${repository} failed: ${error.message}`);
      throw KilnException.unavailable(
        `Could not push the image to the platform registry: ${error.message}`,
      );
    }
    return `${registry.host}/${repository}@${digest}`;
  }

  private registry(): PlatformRegistry {
    if (!this.config.registry) {
      throw KilnException.unavailable(
        'Image uploads are off on this server: no platform registry is configured (REGISTRY_URL)',
      );
    }
    return this.config.registry;
  }
}
