import type { Request } from 'express';
import type { StorageEngine } from 'multer';
import type { Readable } from 'node:stream';

/**
 * Multer storage that reads a file part to its end and keeps nothing: the legacy zip upload is
 * refused, but its bytes must still be consumed for the answer to reach the client.
 */
export const discardingStorage: StorageEngine = {
  _handleFile(
    _req: Request,
    file: { stream: Readable },
    done: (error?: unknown, info?: { size: number }) => void,
  ) {
    let size = 0;
    file.stream.on('data', (chunk: Buffer) => (size += chunk.length));
    file.stream.on('error', (error) => done(error));
    file.stream.on('end', () => done(null, { size }));
  },
  _removeFile(_req: Request, _file: unknown, done: (error: Error | null) => void) {
    done(null);
  },
};
