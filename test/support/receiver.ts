import { createHmac } from 'node:crypto';
import http from 'node:http';
import { AddressInfo } from 'node:net';

// Jest-free: the benchmarks (bench/, plain node) import this file too.

export interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: any;
  at: number;
}

export type Reply = (req: Received, res: http.ServerResponse, index: number) => void;

/** A webhook receiver on 127.0.0.1 (an ephemeral port unless `port` is given). */
export class Receiver {
  readonly received: Received[] = [];
  private server!: http.Server;
  port = 0;

  constructor(public reply: Reply = (_req, res) => res.end('ok')) {}

  /** `keepAliveTimeoutMs`: how long an idle connection stays open (Node's default, 5 s, unless given). */
  async start(port = 0, options: { keepAliveTimeoutMs?: number } = {}): Promise<this> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let json: unknown = null;
        try {
          json = JSON.parse(body);
        } catch {
          json = null;
        }
        const received = { path: req.url ?? '', headers: req.headers, body, json, at: Date.now() };
        this.received.push(received);
        this.reply(received, res, this.received.length - 1);
      });
    });
    if (options.keepAliveTimeoutMs !== undefined) {
      this.server.keepAliveTimeout = options.keepAliveTimeoutMs;
    }
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  url(path = '/hook'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Requests whose event concerns `taskId` (or every request). */
  forTask(taskId?: string): Received[] {
    return this.received.filter((r) => !taskId || r.json?.data?.task_id === taskId);
  }

  async waitFor(
    predicate: (all: Received[]) => boolean,
    timeoutMs = 30_000,
    what = 'webhook requests',
  ): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.received)) {
      if (Date.now() > deadline) {
        throw new Error(
          `${what} not received in ${timeoutMs} ms; got ${JSON.stringify(this.received.map((r) => r.json?.type ?? r.body))}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return this.received;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/**
 * Verifies a Standard Webhooks request independently of Kiln's code: every `v1,` signature in
 * `webhook-signature` that matches HMAC-SHA256(base64-decoded secret, "id.timestamp.body").
 */
export function validSignatures(received: Received, secret: string): number {
  const id = String(received.headers['webhook-id']);
  const timestamp = String(received.headers['webhook-timestamp']);
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key)
    .update(`${id}.${timestamp}.${received.body}`)
    .digest('base64');
  return String(received.headers['webhook-signature'] ?? '')
    .split(' ')
    .filter((part) => part === `v1,${expected}`).length;
}
