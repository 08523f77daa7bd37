import 'reflect-metadata';
import type { Request } from 'express';
import http from 'node:http';
import { AddressInfo, connect } from 'node:net';
import { KilnException } from '@kiln/common';
import { loadConfig } from '@kiln/config';
import { ApiModule } from '../api.module';
import { BODY_KIND, bodyCaps, readBodyBytes } from './body';

type Handler = (...args: unknown[]) => unknown;

/** `Controller.method` → its `@BodyKind`, for every route that declares one. */
function declaredKinds(): Record<string, string> {
  const controllers = Reflect.getMetadata('controllers', ApiModule) as (new (
    ...args: never[]
  ) => object)[];
  const kinds: Record<string, string> = {};
  for (const controller of controllers) {
    for (const key of Object.getOwnPropertyNames(controller.prototype)) {
      const handler = (controller.prototype as Record<string, Handler>)[key];
      const kind = key === 'constructor' ? undefined : Reflect.getMetadata(BODY_KIND, handler);
      if (kind !== undefined) kinds[`${controller.name}.${key}`] = kind as string;
    }
  }
  return kinds;
}

describe('request bodies', () => {
  // Every other route takes JSON up to KILN_MAX_BODY_BYTES; a new bulk or streaming route must
  // say so here.
  it('knows the routes whose body is not plain JSON', () => {
    expect(declaredKinds()).toEqual({
      'TasksController.create': 'bulk',
      'TasksController.webhook': 'raw',
      'SchedulesController.create': 'bulk',
      'SchedulesController.update': 'payload',
      'InvokeController.invoke': 'payload',
      'IncomingTriggersController.fire': 'raw',
      'CodesController.uploadImage': 'streamed',
    });
  });

  it('gives a bulk create room for 100 payloads at the cap, JSON-escaped', () => {
    const base = { DATABASE_URL: 'postgres://u:p@h/db', REDIS_URL: 'redis://h' };
    expect(bodyCaps(loadConfig(base))).toEqual({
      json: 1024 * 1024,
      payload: 1024 * 1024,
      bulk: 100 * (2 * 65536 + 4096),
      raw: 65536,
    });
    const bigPayloads = bodyCaps(loadConfig({ ...base, KILN_PAYLOAD_MAX_BYTES: '1048576' }));
    expect(bigPayloads.payload).toBe(2 * 1048576 + 17 * 4096);
    expect(bigPayloads.raw).toBe(1048576);
  });

  describe('readBodyBytes', () => {
    let server: http.Server;
    let port: number;
    let outcome: Promise<Buffer | KilnException>;
    const timing = { idleMs: 300, totalMs: 1000 };

    beforeAll(async () => {
      server = http.createServer((req, res) => {
        outcome = readBodyBytes(req as Request, 1000, timing, () =>
          KilnException.tooLarge('too large'),
        ).catch((error: KilnException) => error);
        void outcome.then(() => res.end());
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    /** Sends the request head, then each piece of body after its delay; resolves the outcome. */
    async function send(head: string, pieces: [delayMs: number, data: string][] = []) {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write(`POST / HTTP/1.1\r\nHost: x\r\n${head}\r\n`);
      const started = Date.now();
      for (const [delay, data] of pieces) {
        await new Promise((resolve) => setTimeout(resolve, delay));
        if (!socket.destroyed) socket.write(data);
      }
      while (outcome === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
      const result = await outcome;
      socket.destroy();
      return { result, ms: Date.now() - started };
    }

    beforeEach(() => {
      outcome = undefined as unknown as Promise<Buffer>;
    });

    it('reads a body within its cap', async () => {
      const { result } = await send('Content-Length: 5\r\n', [[0, 'hello']]);
      expect(result).toEqual(Buffer.from('hello'));
    });

    it('refuses a declared length over the cap before any byte of it', async () => {
      const { result, ms } = await send('Content-Length: 1001\r\n');
      expect(result).toMatchObject({ message: 'too large' });
      expect(ms).toBeLessThan(250);
    });

    it('cuts a chunked body off once past the cap', async () => {
      const chunk = (data: string) => `${data.length.toString(16)}\r\n${data}\r\n`;
      const { result } = await send('Transfer-Encoding: chunked\r\n', [
        [0, chunk('x'.repeat(600))],
        [0, chunk('x'.repeat(600))],
      ]);
      expect(result).toMatchObject({ message: 'too large' });
    });

    it('gives up on a client that goes quiet, or that is too slow overall', async () => {
      const quiet = await send('Content-Length: 10\r\n', [[0, 'abc']]);
      expect(quiet.result).toMatchObject({
        code: 'request_timeout',
        message: 'Request body timed out: no data for 0.3 s',
      });
      const drip = Array.from({ length: 10 }, (): [number, string] => [150, 'a']);
      const slow = await send('Content-Length: 10\r\n', drip);
      expect(slow.result).toMatchObject({
        code: 'request_timeout',
        message: 'Request body timed out: not all sent within 1 s',
      });
    });
  });
});
