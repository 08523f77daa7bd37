import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import {
  Kiln,
  KilnError,
  KilnTimeoutError,
  WebhookVerificationError,
  resolveSettings,
  saveSettings,
  verifyWebhook,
} from './index';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

type Handler = (req: Seen, res: ServerResponse) => void;

/** A loopback HTTP server answering what each test scripts, recording what it was sent. */
class FakeKiln {
  seen: Seen[] = [];
  private server: Server | undefined;
  constructor(private handler: Handler) {}

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (part: Buffer) => parts.push(part));
      req.on('end', () => {
        const seen = {
          method: req.method!,
          url: req.url!,
          headers: req.headers,
          body: Buffer.concat(parts),
        };
        this.seen.push(seen);
        this.handler(seen, res);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const PID = '0123456789abcdef01234567';
const isolated = { cwd: null, configFile: null, env: {} };

async function withKiln(handler: Handler, test: (kiln: Kiln, fake: FakeKiln) => Promise<void>) {
  const fake = new FakeKiln(handler);
  const url = await fake.start();
  try {
    await test(
      new Kiln({ url, projectId: PID, token: 'tok', retryDelayMs: 10, ...isolated }),
      fake,
    );
  } finally {
    await fake.stop();
  }
}

/**
 * What a real Kiln cannot be made to show on demand: 503s and dropped connections (retries), an
 * event stream broken mid-way (resume). Everything else is tested against the real Kiln in
 * test/client.e2e-spec.ts.
 */
describe('Kiln client (against a fake server)', () => {
  it('retries idempotent calls on 503 and 408, never a create, and throws KilnError', async () => {
    let answers = [503, 408, 200];
    await withKiln(
      (req, res) => {
        const status = answers.shift() ?? 503;
        if (status !== 200) return json(res, status, { msg: 'Database unavailable, retry later' });
        json(res, 200, { id: 't'.repeat(24), status: 'running' });
      },
      async (kiln, fake) => {
        expect((await kiln.tasks.get('t'.repeat(24))).status).toBe('running');
        expect(fake.seen).toHaveLength(3);
        answers = [503];
        const error = await kiln.tasks.create('hello', {}).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(KilnError);
        expect(error).toMatchObject({ status: 503, msg: 'Database unavailable, retry later' });
        expect(fake.seen).toHaveLength(4); // the create was sent once
      },
    );
  });

  it("codes.invoke: one POST with the task's fields and ?wait, waiting past the client's timeout; 504 is a KilnTimeoutError naming the task; a 503 is not retried", async () => {
    const id = 'b'.repeat(24);
    const ended = {
      id,
      status: 'error',
      msg: 'exit code 1',
      duration: 5,
      output: 'out',
      truncated: false,
    };
    let answer = 200;
    await withKiln(
      (req, res) => {
        if (answer === 504) return json(res, 504, { msg: `Task ${id} did not end within 1 s`, id });
        if (answer === 503) return json(res, 503, { msg: 'Database unavailable, retry later' });
        // Slower than the client's own 200 ms timeout: an invoke's limit is its wait's.
        setTimeout(() => json(res, 200, ended), 400);
      },
      async (_kiln, fake) => {
        const kiln = new Kiln({
          url: _kiln.settings.url,
          projectId: PID,
          token: 'tok',
          timeoutMs: 200,
          ...isolated,
        });
        const result = await kiln.codes.invoke('my code', { a: 1 }, { wait: 2, label: 'l' });
        expect(result).toEqual(ended);
        expect(fake.seen[0]).toMatchObject({
          method: 'POST',
          url: `/2/projects/${PID}/codes/my%20code/invoke?wait=2`,
        });
        expect(JSON.parse(fake.seen[0].body.toString())).toEqual({
          label: 'l',
          payload: '{"a":1}',
        });

        answer = 504;
        const late = await kiln.codes.invoke('hello', 'raw').catch((e: unknown) => e);
        expect(late).toBeInstanceOf(KilnTimeoutError);
        expect(late).toMatchObject({
          status: 504,
          taskId: id,
          msg: `Task ${id} did not end within 1 s`,
        });
        expect(fake.seen[1].url).toBe(`/2/projects/${PID}/codes/hello/invoke`);
        expect(JSON.parse(fake.seen[1].body.toString())).toEqual({ payload: 'raw' });

        answer = 503;
        const refused = await kiln.codes.invoke('hello').catch((e: unknown) => e);
        expect(refused).toMatchObject({ status: 503 });
        expect(refused).not.toBeInstanceOf(KilnTimeoutError);
        expect(fake.seen).toHaveLength(3);
      },
    );
  });

  it('bulk cancel and retry: 1000 ids a request, and a filter repeated while the answer says more', async () => {
    let more = 2;
    await withKiln(
      (req, res) => {
        const body = JSON.parse(req.body.toString()) as { ids?: string[] };
        if (req.url.endsWith('/tasks/retry')) {
          const ids = body.ids ?? [];
          return json(res, 200, {
            msg: 'Queued up',
            retried: ids.length,
            tasks: ids.map((id) => ({ id: 'r'.repeat(24), original_task_id: id })),
            not_found: 1,
          });
        }
        if (body.ids) return json(res, 200, { cancelled: body.ids.length - 1, not_found: 1 });
        json(res, 200, { msg: 'Cancelled', cancelled: 10_000, more: more-- > 0 });
      },
      async (kiln, fake) => {
        const ids = Array.from({ length: 2500 }, (_, n) => n.toString(16).padStart(24, '0'));
        expect(await kiln.tasks.cancelMany({ ids })).toEqual({ cancelled: 2497, notFound: 3 });
        expect(fake.seen.map((seen) => JSON.parse(seen.body.toString()).ids.length)).toEqual([
          1000, 1000, 500,
        ]);
        fake.seen = [];
        const filter = { codeName: 'resize', status: ['queued' as const, 'running' as const] };
        expect(await kiln.tasks.cancelMany({ filter })).toEqual({ cancelled: 30_000, notFound: 0 });
        expect(fake.seen).toHaveLength(3);
        expect(JSON.parse(fake.seen[0].body.toString())).toEqual({
          filter: { code_name: 'resize', queued: 1, running: 1 },
        });
        fake.seen = [];
        const retried = await kiln.tasks.retryMany({ ids: ids.slice(0, 2) }, { delay: 5 });
        expect(retried.tasks.map((task) => task.original_task_id)).toEqual(ids.slice(0, 2));
        expect(JSON.parse(fake.seen[0].body.toString())).toEqual({
          ids: ids.slice(0, 2),
          delay: 5,
        });
      },
    );
  });

  it('retries an idempotent call after a dropped connection', async () => {
    let drops = 1;
    await withKiln(
      (req, res) => {
        if (drops-- > 0) return res.socket?.destroy();
        json(res, 200, { codes: [] });
      },
      async (kiln, fake) => {
        const codes = [];
        for await (const code of kiln.codes.list()) codes.push(code);
        expect(codes).toEqual([]);
        expect(fake.seen).toHaveLength(2);
      },
    );
  });

  it('follows the event stream and resumes after a broken connection with Last-Event-ID', async () => {
    let connections = 0;
    await withKiln(
      (req, res) => {
        connections++;
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        if (connections === 1) {
          res.write('id: 1.1\ndata: "line 1\\nline"\n\n');
          setTimeout(() => res.destroy(), 20); // the API replica goes away mid-stream
          return;
        }
        res.write(': keepalive\n\nid: 1.2\ndata: " 2\\n"\n\n');
        res.end('event: end\ndata: {"status":"error"}\n\n');
      },
      async (kiln, fake) => {
        const lines: string[] = [];
        for await (const line of kiln.tasks.follow('a'.repeat(24))) lines.push(line);
        expect(lines).toEqual(['line 1', 'line 2']);
        expect(fake.seen[0].url).toContain('follow=1');
        expect(fake.seen[1].headers['last-event-id']).toBe('1.1');
        const events = [];
        for await (const event of kiln.tasks.stream('a'.repeat(24))) events.push(event);
        expect(events[events.length - 1]).toEqual({ type: 'end', status: 'error' });
      },
    );
  });
});

describe('settings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-settings-'));
  writeFileSync(
    join(dir, 'iron.json'),
    JSON.stringify({
      project_id: 'from-iron-json',
      token: 'iron-json-token',
      host: '127.0.0.1',
      port: 9090,
    }),
  );
  const saved = join(dir, 'saved', 'config.json');
  saveSettings(saved, { url: 'http://saved:1', projectId: 'saved-project', token: 'saved-token' });

  it('takes flags, then KILN_* / IRON_* variables, then iron.json, then the saved config', () => {
    const env = { IRON_TOKEN: 'iron-env-token', KILN_TOKEN: 'kiln-env-token' };
    expect(
      resolveSettings({ explicit: { token: 'flag' }, env, cwd: dir, configFile: saved }),
    ).toEqual({
      settings: { url: 'http://127.0.0.1:9090', projectId: 'from-iron-json', token: 'flag' },
      origins: { url: 'iron.json', projectId: 'iron.json', token: 'flags' },
    });
    expect(resolveSettings({ env, cwd: dir, configFile: saved }).settings.token).toBe(
      'kiln-env-token',
    );
    expect(
      resolveSettings({ env: { IRON_TOKEN: 'i' }, cwd: dir, configFile: saved }).settings.token,
    ).toBe('i');
    expect(
      resolveSettings({
        env: { IRON_HOST: 'kiln.example.com', IRON_PORT: '443' },
        cwd: null,
        configFile: saved,
      }).settings,
    ).toEqual({
      url: 'https://kiln.example.com:443',
      projectId: 'saved-project',
      token: 'saved-token',
    });
    expect(resolveSettings({ env: {}, cwd: null, configFile: null }).settings).toEqual({
      url: 'http://127.0.0.1:8080',
    });
  });

  it('refuses to build a client without a token, saying how to give one', () => {
    expect(() => new Kiln({ projectId: PID, ...isolated })).toThrow(
      /no token.*KILN_TOKEN.*kiln login/,
    );
  });
});

describe('verifyWebhook', () => {
  const secret = `whsec_${Buffer.alloc(24, 7).toString('base64')}`;
  const body = '{"type":"task.complete","timestamp":"2026-01-01T00:00:00.000Z","data":{}}';
  const now = new Date('2026-01-01T00:00:10Z');
  const signed = (timestamp: number, key = secret) => ({
    'webhook-id': 'msg_1',
    'webhook-timestamp': String(timestamp),
    'webhook-signature': `v1,${createHmac('sha256', Buffer.from(key.slice(6), 'base64'))
      .update(`msg_1.${timestamp}.${body}`)
      .digest('base64')}`,
  });
  const at = Math.floor(now.getTime() / 1000);

  it('returns the event when a signature matches, from a Headers object too', () => {
    expect(verifyWebhook(body, signed(at), secret, { now }).type).toBe('task.complete');
    expect(verifyWebhook(Buffer.from(body), new Headers(signed(at)), [secret], { now }).type).toBe(
      'task.complete',
    );
  });

  it('refuses a stale or future timestamp, a changed body, missing headers', () => {
    expect(() => verifyWebhook(body, signed(at - 301), secret, { now })).toThrow(
      WebhookVerificationError,
    );
    expect(() => verifyWebhook(body, signed(at + 301), secret, { now })).toThrow(/tolerance/);
    expect(verifyWebhook(body, signed(at - 600), secret, { now, toleranceSeconds: 900 }).type).toBe(
      'task.complete',
    );
    expect(() =>
      verifyWebhook(body.replace('complete', 'error'), signed(at), secret, { now }),
    ).toThrow(/no signature matches/);
    expect(() => verifyWebhook(body, { 'webhook-id': 'msg_1' }, secret, { now })).toThrow(
      /missing/,
    );
  });
});
