import http, { IncomingHttpHeaders } from 'node:http';

// Jest-free: the benchmarks (bench/, plain node) import this file too.

export interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The text parsed when it is JSON, else the text. */
  body: any;
}

export interface RawOptions {
  /** `http://host:port` of the API. */
  url: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  /** The client address to send from (any of 127.0.0.0/8 reaches a loopback server). */
  localAddress?: string;
}

/**
 * A request on a connection of its own whose body the caller writes piece by piece (or not at
 * all): for what `fetch` cannot do, such as declaring a length and never sending it, or sending
 * from another loopback address. The answer resolves whenever it comes, also before the body is
 * sent; writes after the server closed the connection are dropped.
 */
export class OpenRequest {
  readonly answer: Promise<RawAnswer>;
  /** Resolves once the connection is closed (by either side). */
  readonly closed: Promise<void>;
  /** Bytes of body written so far. */
  written = 0;
  /** Set once the server closed the connection or it broke. */
  ended = false;
  /** The answer's status, as soon as its head came (before its body). */
  status: number | undefined;
  private readonly request: http.ClientRequest;

  constructor(options: RawOptions) {
    const target = new URL(options.path, options.url);
    this.request = http.request(target, {
      method: options.method,
      headers: options.headers,
      localAddress: options.localAddress,
      agent: false,
    });
    let closedResolve: () => void = () => undefined;
    this.closed = new Promise<void>((resolve) => (closedResolve = resolve));
    this.request.on('socket', (socket) =>
      socket.once('close', () => {
        this.ended = true;
        closedResolve();
      }),
    );
    this.answer = new Promise<RawAnswer>((resolve, reject) => {
      this.request.on('error', (error) => {
        this.ended = true;
        reject(error);
      });
      this.request.on('response', (res) => {
        this.status = res.statusCode;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', () => undefined);
        res.on('close', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
        });
      });
    });
    // The answer may come first and the connection go; the caller looks at `answer`.
    this.answer.catch(() => undefined);
    this.request.flushHeaders();
  }

  /** Writes body bytes, unless the connection is gone; resolves once they are handed to it. */
  write(chunk: Buffer | string): Promise<void> {
    if (this.ended || this.request.destroyed) return Promise.resolve();
    this.written += Buffer.byteLength(chunk);
    if (this.request.write(chunk)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.request.off('drain', done);
        this.request.off('close', done);
        resolve();
      };
      this.request.once('drain', done);
      this.request.once('close', done);
    });
  }

  end(chunk?: Buffer | string): void {
    if (chunk !== undefined) this.written += Buffer.byteLength(chunk);
    if (!this.ended) this.request.end(chunk);
  }

  destroy(): void {
    this.request.destroy();
  }
}

/** One whole request from `localAddress` (a plain `fetch` cannot choose it). */
export async function rawRequest(
  options: RawOptions & { body?: string | Buffer },
): Promise<RawAnswer> {
  const headers = { ...options.headers };
  if (options.body !== undefined) {
    headers['content-length'] = String(Buffer.byteLength(options.body));
  }
  const open = new OpenRequest({ ...options, headers });
  open.end(options.body);
  return open.answer;
}
