import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { Transport } from './http';
import { paged } from './paging';
import {
  Code,
  CodeOptions,
  Message,
  NewCode,
  RegisteredCode,
  UploadOptions,
  UploadedCode,
} from './types';

/** Register images as codes, or upload `docker save` tarballs: `kiln.codes`. */
export class Codes {
  constructor(
    private readonly http: Transport,
    private readonly base: string,
  ) {}

  /**
   * Registers a Docker image as a code (a new revision when the name exists).
   * @example await kiln.codes.register({ name: 'hello', image: 'busybox:latest', retries: 2 });
   */
  async register(code: NewCode): Promise<RegisteredCode> {
    return this.http.json<RegisteredCode>({
      method: 'POST',
      path: `${this.base}/codes`,
      json: { name: code.name, image: code.image, ...codeSettings(code) },
      idempotent: false,
    });
  }

  /**
   * Uploads a `docker save` tarball (plain or gzipped) as the image of code `name`, streaming the
   * file and reporting `onProgress({ sent, total })` as it goes. Not retried (it is not
   * idempotent); Kiln answers once the image is in its registry.
   * @example await kiln.codes.upload('./app.tar', { name: 'app', onProgress: (p) => console.log(p.sent) });
   */
  async upload(tarballPath: string, options: UploadOptions): Promise<UploadedCode> {
    const total = (await stat(tarballPath)).size;
    const type = (await isGzip(tarballPath)) ? 'application/gzip' : 'application/x-tar';
    let sent = 0;
    const counter = new TransformStream<Uint8Array, Uint8Array>({
      transform(bytes, controller) {
        controller.enqueue(bytes);
        sent += bytes.byteLength;
        options.onProgress?.({ sent, total });
      },
    });
    const file = Readable.toWeb(createReadStream(tarballPath)) as ReadableStream<Uint8Array>;
    return this.http.json<UploadedCode>({
      method: 'POST',
      path: `${this.base}/codes/${encodeURIComponent(options.name)}/image`,
      body: file.pipeThrough(counter),
      headers: { 'content-type': type, 'content-length': String(total) },
      idempotent: false,
      streaming: true,
      signal: options.signal,
    });
  }

  /** Every code of the project, a page at a time. */
  async *list(): AsyncGenerator<Code> {
    yield* paged(async (page) => {
      const { codes } = await this.http.json<{ codes: Code[] }>({
        method: 'GET',
        path: `${this.base}/codes`,
        query: { page, per_page: 100 },
        idempotent: true,
      });
      return codes;
    }, 100);
  }

  async get(id: string): Promise<Code> {
    return this.http.json<Code>({
      method: 'GET',
      path: `${this.base}/codes/${encodeURIComponent(id)}`,
      idempotent: true,
    });
  }

  async delete(id: string): Promise<Message> {
    return this.http.json<Message>({
      method: 'DELETE',
      path: `${this.base}/codes/${encodeURIComponent(id)}`,
      idempotent: true,
    });
  }
}

function codeSettings(code: CodeOptions): Record<string, unknown> {
  return {
    command: code.command,
    config: code.config,
    env_vars: code.envVars,
    max_concurrency: code.maxConcurrency,
    retries: code.retries,
    retries_delay: code.retriesDelay,
    default_priority: code.defaultPriority,
    cpus: code.cpus,
    memory: code.memory,
    hot: code.hot,
  };
}

/** gzip's magic bytes 1f 8b. */
async function isGzip(path: string): Promise<boolean> {
  const file = await open(path, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await file.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await file.close();
  }
}
