import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Kiln, KilnError, resolveSettings, saveSettings } from './index';

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

describe('Kiln client (against a fake server)', () => {
  it('uploads a tarball as a stream with its type and progress', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-client-'));
    const plain = join(dir, 'image.tar');
    const gzipped = join(dir, 'image.tar.gz');
    writeFileSync(plain, Buffer.alloc(300_000, 7));
    writeFileSync(gzipped, gzipSync(Buffer.alloc(1000, 1)));
    await withKiln(
      (req, res) =>
        json(res, 200, {
          id: 'c'.repeat(24),
          msg: 'Upload successful.',
          rev: 3,
          image: 'r/kiln@sha256:ab',
        }),
      async (kiln, fake) => {
        const progress: { sent: number; total: number }[] = [];
        const answer = await kiln.codes.upload(plain, {
          name: 'my app',
          onProgress: (p) => progress.push(p),
        });
        expect(answer).toEqual({
          id: 'c'.repeat(24),
          msg: 'Upload successful.',
          rev: 3,
          image: 'r/kiln@sha256:ab',
        });
        await kiln.codes.upload(gzipped, { name: 'zipped' });
        const [first, second] = fake.seen;
        expect(first.method).toBe('POST');
        expect(first.url).toBe(`/2/projects/${PID}/codes/my%20app/image`);
        expect(first.headers['content-type']).toBe('application/x-tar');
        expect(first.headers.authorization).toBe('OAuth tok');
        expect(first.body.length).toBe(300_000);
        expect(second.headers['content-type']).toBe('application/gzip');
        expect(progress.length).toBeGreaterThan(1);
        expect(progress[progress.length - 1]).toEqual({ sent: 300_000, total: 300_000 });
        expect(progress.map((p) => p.sent)).toEqual(
          [...progress.map((p) => p.sent)].sort((a, b) => a - b),
        );
      },
    );
  });

  it('speaks the webhooks contract', async () => {
    const hook = {
      id: 'w'.repeat(24),
      url: 'http://127.0.0.1:9/h',
      events: ['task.error'],
      secret: 's',
    };
    await withKiln(
      (req, res) => {
        if (req.url.endsWith('/rotate_secret'))
          return json(res, 200, { secret: 'new', msg: 'Rotated' });
        if (req.url.endsWith('/deliveries'))
          return json(res, 200, { deliveries: [{ id: 'd1', state: 'ok' }] });
        if (req.url.endsWith('/redeliver')) return json(res, 200, { msg: 'Redelivery queued' });
        if (req.method === 'DELETE') return json(res, 200, { msg: 'Deleted' });
        if (req.method === 'GET' && req.url.endsWith('/webhooks'))
          return json(res, 200, { webhooks: [hook] });
        json(res, 200, hook);
      },
      async (kiln, fake) => {
        expect(
          await kiln.webhooks.create({ url: hook.url, events: ['task.error'], codeName: 'hello' }),
        ).toEqual(hook);
        expect(await kiln.webhooks.list()).toEqual([hook]);
        expect(await kiln.webhooks.get(hook.id)).toEqual(hook);
        await kiln.webhooks.update(hook.id, { enabled: false });
        expect(await kiln.webhooks.delete(hook.id)).toEqual({ msg: 'Deleted' });
        expect(await kiln.webhooks.rotateSecret(hook.id)).toEqual({
          secret: 'new',
          msg: 'Rotated',
        });
        expect(await kiln.webhooks.deliveries(hook.id)).toEqual([{ id: 'd1', state: 'ok' }]);
        expect(await kiln.webhooks.redeliver(hook.id, 'd1')).toEqual({ msg: 'Redelivery queued' });
        const base = `/2/projects/${PID}/webhooks`;
        expect(fake.seen.map((s) => `${s.method} ${s.url}`)).toEqual([
          `POST ${base}`,
          `GET ${base}`,
          `GET ${base}/${hook.id}`,
          `PATCH ${base}/${hook.id}`,
          `DELETE ${base}/${hook.id}`,
          `POST ${base}/${hook.id}/rotate_secret`,
          `GET ${base}/${hook.id}/deliveries`,
          `POST ${base}/${hook.id}/deliveries/d1/redeliver`,
        ]);
        expect(JSON.parse(fake.seen[0].body.toString())).toEqual({
          url: hook.url,
          events: ['task.error'],
          code_name: 'hello',
        });
        expect(JSON.parse(fake.seen[3].body.toString())).toEqual({ enabled: false });
      },
    );
  });

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

  it('sends task options under their API names, with webhook', async () => {
    await withKiln(
      (req, res) => json(res, 200, { msg: 'Queued up', tasks: [{ id: 'a'.repeat(24) }] }),
      async (kiln, fake) => {
        await kiln.tasks.create(
          'hello',
          { a: 1 },
          { priority: 2, label: 'x', webhook: 'http://127.0.0.1:9/w' },
        );
        expect(JSON.parse(fake.seen[0].body.toString())).toEqual({
          tasks: [
            {
              code_name: 'hello',
              payload: '{"a":1}',
              priority: 2,
              label: 'x',
              webhook: 'http://127.0.0.1:9/w',
            },
          ],
        });
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
