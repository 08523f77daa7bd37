import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { KilnError, KilnTimeoutError } from './errors';
import { Transport } from './http';
import { INVOKE_WAIT_DEFAULT } from './limits';
import { paged } from './paging';
import {
  Code,
  CodeOptions,
  InvokeOptions,
  InvokeResult,
  Message,
  NewCode,
  RegisteredCode,
  UploadOptions,
  UploadedCode,
} from './types';

/** How much longer than its `wait` an invoke's request may take (queueing, reading the log, the network). */
const INVOKE_SLACK_MS = 30_000;

/** Register images as codes, upload `docker save` tarballs, invoke a code: `kiln.codes`. */
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
   * Uploads a `docker save` tarball (plain or gzipped) as the image of code `name`, or a zip code
   * package (told by its first bytes) to run on `image` or `stack` with `command` (docs/api.md,
   * "Zip packages"), streaming the file and reporting `onProgress({ sent, total })` as it goes.
   * Not retried (it is not idempotent); Kiln answers once the image or zip is in its registry.
   * @example await kiln.codes.upload('./app.tar', { name: 'app', onProgress: (p) => console.log(p.sent) });
   * @example await kiln.codes.upload('./hello.zip', { name: 'hello', stack: 'node', command: 'node hello.js' });
   */
  async upload(path: string, options: UploadOptions): Promise<UploadedCode> {
    const total = (await stat(path)).size;
    const head = await firstBytes(path, 4);
    if (head.length === 4 && head.readUInt32LE(0) === ZIP_LOCAL_HEADER) {
      return this.uploadZip(path, total, options);
    }
    const type = head[0] === 0x1f && head[1] === 0x8b ? 'application/gzip' : 'application/x-tar';
    return this.http.json<UploadedCode>({
      method: 'POST',
      path: `${this.base}/codes/${encodeURIComponent(options.name)}/image`,
      body: counted(fileStream(path), total, options),
      headers: { 'content-type': type, 'content-length': String(total) },
      idempotent: false,
      streaming: true,
      signal: options.signal,
    });
  }

  /** The zip as the `file` of IronWorker's multipart `POST codes`, its settings in `data`. */
  private async uploadZip(path: string, size: number, options: UploadOptions) {
    const boundary = `kiln-${Math.random().toString(16).slice(2)}${Date.now().toString(16)}`;
    const data = JSON.stringify({
      name: options.name,
      image: options.image,
      stack: options.stack,
      command: options.command,
    });
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="data"\r\n\r\n${data}\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="code.zip"\r\n` +
        'Content-Type: application/zip\r\n\r\n',
    );
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const file = counted(fileStream(path), size, options);
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(head);
        const reader = file.getReader();
        for (let next = await reader.read(); !next.done; next = await reader.read()) {
          controller.enqueue(next.value);
        }
        controller.enqueue(tail);
        controller.close();
      },
    });
    return this.http.json<UploadedCode>({
      method: 'POST',
      path: `${this.base}/codes`,
      body,
      headers: {
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': String(head.length + size + tail.length),
      },
      idempotent: false,
      streaming: true,
      signal: options.signal,
    });
  }

  /**
   * Runs one task of code `name` at the top priority and resolves with its outcome and output
   * once it has ended (Kiln's `POST …/codes/{name}/invoke`), whatever the outcome: check
   * `status`. A string payload is sent as is, anything else as JSON. When the task has not ended
   * within `wait` seconds, rejects with a `KilnTimeoutError` whose `taskId` names it (it goes
   * on). Not retried: each call queues a task.
   * @example const { status, output } = await kiln.codes.invoke('resize', { url }, { wait: 60 });
   */
  async invoke(
    name: string,
    payload: unknown = '',
    options: InvokeOptions = {},
  ): Promise<InvokeResult> {
    const { wait, signal, ...task } = options;
    const path = `${this.base}/codes/${encodeURIComponent(name)}/invoke`;
    const res = await this.http.send({
      method: 'POST',
      path,
      query: { wait },
      json: { ...task, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) },
      idempotent: false,
      signal,
      timeoutMs: (wait ?? INVOKE_WAIT_DEFAULT) * 1000 + INVOKE_SLACK_MS,
      answers: [504],
    });
    const text = await res.text();
    let body: Partial<InvokeResult> & { msg?: string };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new KilnError(res.status, text.trim().slice(0, 500) || res.statusText, `POST ${path}`);
    }
    if (res.status === 504) {
      throw new KilnTimeoutError(
        body.msg ?? 'the task did not end in time',
        body.id,
        504,
        `POST ${path}`,
      );
    }
    return body as InvokeResult;
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

/** A zip's local file header signature, `PK\3\4`. */
const ZIP_LOCAL_HEADER = 0x04034b50;

async function firstBytes(path: string, count: number): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const head = Buffer.alloc(count);
    const { bytesRead } = await file.read(head, 0, count, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

function fileStream(path: string): ReadableStream<Uint8Array> {
  return Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>;
}

/** The file's bytes, reporting `onProgress({ sent, total })` as each piece passes. */
function counted(
  file: ReadableStream<Uint8Array>,
  total: number,
  options: UploadOptions,
): ReadableStream<Uint8Array> {
  let sent = 0;
  return file.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(bytes, controller) {
        controller.enqueue(bytes);
        sent += bytes.byteLength;
        options.onProgress?.({ sent, total });
      },
    }),
  );
}
