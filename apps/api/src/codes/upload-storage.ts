import type { Request } from 'express';
import type { StorageEngine } from 'multer';
import type { Readable } from 'node:stream';
import type { ImageArchive, ImageUploadsService } from '@kiln/images';

/** A multipart `file` part as the route gets it: the checked image, spooled on disk. */
export interface UploadedImageFile {
  archive: ImageArchive;
}

/**
 * Multer storage for `POST …/codes`: the `file` part streams into the image upload check
 * (`ImageUploadsService.receive`), never into memory. The route disposes of the spool once done;
 * multer does (through `_removeFile`) when the request fails after the part was stored.
 */
export function imageUploadStorage(uploads: ImageUploadsService): StorageEngine {
  return {
    _handleFile(
      _req: Request,
      file: { stream: Readable },
      done: (error?: unknown, info?: Partial<Express.Multer.File>) => void,
    ) {
      uploads.receive(file.stream).then(
        (archive) => done(null, { archive } as Partial<Express.Multer.File>),
        (error: unknown) => done(error),
      );
    },
    _removeFile(_req: Request, file: Express.Multer.File, done: (error: Error | null) => void) {
      ((file as Partial<UploadedImageFile>).archive?.dispose() ?? Promise.resolve()).then(
        () => done(null),
        (error: Error) => done(error),
      );
    },
  };
}
