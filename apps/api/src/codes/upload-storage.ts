import type { Request } from 'express';
import type { StorageEngine } from 'multer';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import {
  looksLikeZip,
  type ImageArchive,
  type ImageUploadsService,
  type ZipPackage,
  type ZipPackagesService,
} from '@kiln/images';

/**
 * A multipart `file` part as the route gets it, spooled on disk and checked: a zip code package
 * (told by its first bytes), or else the image of a `docker save` tarball.
 */
export type UploadedCodeFile =
  { zip: ZipPackage; archive?: never } | { archive: ImageArchive; zip?: never };

/**
 * Multer storage for `POST …/codes`: the `file` part streams into the zip check
 * (`ZipPackagesService.receive`) or the image upload check (`ImageUploadsService.receive`), never
 * into memory. The route disposes of the spool once done; multer does (through `_removeFile`)
 * when the request fails after the part was stored.
 */
export function codeUploadStorage(
  images: ImageUploadsService,
  zips: ZipPackagesService,
): StorageEngine {
  return {
    _handleFile(
      _req: Request,
      file: { stream: Readable },
      done: (error?: unknown, info?: Partial<Express.Multer.File>) => void,
    ) {
      receive(file.stream, images, zips).then(
        (upload) => done(null, upload as Partial<Express.Multer.File>),
        (error: unknown) => done(error),
      );
    },
    _removeFile(_req: Request, file: Express.Multer.File, done: (error: Error | null) => void) {
      const upload = file as Partial<UploadedCodeFile>;
      ((upload.zip ?? upload.archive)?.dispose() ?? Promise.resolve()).then(
        () => done(null),
        (error: Error) => done(error),
      );
    },
  };
}

async function receive(
  stream: Readable,
  images: ImageUploadsService,
  zips: ZipPackagesService,
): Promise<UploadedCodeFile> {
  return looksLikeZip(await head(stream))
    ? { zip: await zips.receive(stream) }
    : { archive: await images.receive(stream) };
}

/** The stream's first bytes (at least 4 unless it is shorter), left in it to be read again. */
async function head(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  let length = 0;
  while (length < 4) {
    const chunk = stream.read() as Buffer | null;
    if (chunk) {
      parts.push(chunk);
      length += chunk.length;
      continue;
    }
    if (stream.readableEnded || stream.destroyed) break;
    // Whichever comes first; the other wait is dropped (its rejection is handled by the race).
    const waits = new AbortController();
    const { signal } = waits;
    await Promise.race([
      once(stream, 'readable', { signal }),
      once(stream, 'end', { signal }),
    ]).finally(() => waits.abort());
  }
  const bytes = Buffer.concat(parts);
  if (bytes.length) stream.unshift(bytes);
  return bytes;
}
