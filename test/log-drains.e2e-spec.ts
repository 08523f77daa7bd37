import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  HttpsDrainReceiver,
  Rsyslog,
  selfSignedCert,
  TlsSyslogReceiver,
} from './support/drain-receivers';
import { waitUntil } from './support/kiln';
import { OwnStack } from './support/own-stack';
import { freePort, sleep, waitForHealthy } from './support/processes';
import { Received, validSignatures } from './support/receiver';

/**
 * Issue 15 part 5, log drains: a project's (or one code's) task output shipped by the scheduler's
 * leader to a real rsyslog (TCP), a TLS syslog receiver and an HTTPS receiver, all on 127.0.0.1
 * (allow-listed as for webhooks; the receivers' self-signed certificate trusted through
 * NODE_EXTRA_CA_CERTS). A buffer of 8 s and retries at most 1 s apart keep the outage cases short.
 */
describe('log drains', () => {
  const stack = new OwnStack('drains', 90);
  const dir = mkdtempSync(join(tmpdir(), 'kiln-drains-'));
  const cert = selfSignedCert(dir);
  const BUFFER_SECONDS = 8;
  let schedulerPort: number;
  let a: { id: string; token: string };
  let b: { id: string; token: string };
  const rsyslogA = new Rsyslog();
  const rsyslogB = new Rsyslog();
  const closers: (() => Promise<void>)[] = [];

  const as = (who: { id: string; token: string }, method: string, path: string, json?: unknown) =>
    stack.request(method, `/2/projects/${who.id}${path}`, json, who.token);

  async function addDrain(who: { id: string; token: string }, body: Record<string, unknown>) {
    const res = await as(who, 'POST', '/log_drains', body);
    expect(res.status).toBe(200);
    closers.push(async () => void (await as(who, 'DELETE', `/log_drains/${res.body.id}`)));
    return res.body as { id: string; url: string; secret?: string };
  }

  async function https(reply?: () => number) {
    const receiver = await new HttpsDrainReceiver().start(cert.key, cert.cert);
    if (reply) receiver.status = reply;
    closers.push(() => receiver.close());
    return receiver;
  }

  /** Queues a task of `code` running `script` in sh and waits for it to end. */
  async function run(who: { id: string; token: string }, code: string, script: string) {
    const res = await as(who, 'POST', '/tasks', { tasks: [{ code_name: code, payload: script }] });
    expect(res.status).toBe(200);
    const id = res.body.tasks[0].id as string;
    let status = '';
    await waitUntil(
      `task ${id} ends`,
      async () => {
        status = (await as(who, 'GET', `/tasks/${id}`)).body.status;
        return !['queued', 'preparing', 'running'].includes(status);
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    return { id, status };
  }

  /** Numbered lines on stdout and stderr, alternating. */
  const numbered = (tag: string, n: number) =>
    `i=1; while [ $i -le ${n} ]; do echo "${tag} out $i"; echo "${tag} err $i" >&2; i=$((i+1)); done`;

  async function drain(who: { id: string; token: string }, id: string) {
    const res = await as(who, 'GET', `/log_drains/${id}`);
    expect(res.status).toBe(200);
    return res.body;
  }

  async function schedulerMetric(name: string): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${schedulerPort}/metrics`, {
      headers: { authorization: `OAuth ${stack.adminToken}` },
    });
    const text = await res.text();
    return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce(
      (sum, match) => sum + Number(match[1]),
      0,
    );
  }

  beforeAll(async () => {
    await stack.create({
      KILN_LOG_DRAIN_BUFFER_SECONDS: String(BUFFER_SECONDS),
      KILN_LOG_DRAIN_RETRY_MAX_SECONDS: '1',
      KILN_QUOTA_LOG_DRAINS: '4',
      NODE_EXTRA_CA_CERTS: cert.certFile,
    });
    await stack.startApi();
    await stack.startWorker();
    schedulerPort = await freePort();
    stack.start('scheduler', { KILN_SCHEDULER_HEALTH_PORT: String(schedulerPort) });
    await waitForHealthy(`http://127.0.0.1:${schedulerPort}/healthz`);
    await rsyslogA.start();
    await rsyslogB.start();
    a = await stack.newProject('drains-a');
    b = await stack.newProject('drains-b');
    for (const who of [a, b]) {
      for (const name of ['printer', 'other']) {
        const code = await as(who, 'POST', '/codes', {
          name,
          image: 'kiln-test/busybox:latest',
          command: 'sh /mnt/kiln/payload.json',
        });
        expect(code.status).toBe(200);
      }
    }
  }, 120_000);

  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });

  afterAll(async () => {
    await rsyslogA.close();
    await rsyslogB.close();
    await stack.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates, lists, reads, updates and deletes drains; an HTTPS secret is shown at creation only', async () => {
    const made = await as(a, 'POST', '/log_drains', {
      url: 'https://logs.kiln.invalid/kiln',
      code_name: 'printer',
    });
    expect(made.status).toBe(200);
    expect(made.body).toMatchObject({
      url: 'https://logs.kiln.invalid/kiln',
      code_name: 'printer',
      delivered_lines: 0,
      dropped_lines: 0,
      failures: 0,
      last_error: null,
    });
    expect(made.body.secret).toMatch(/^whsec_/);
    const syslog = await as(a, 'POST', '/log_drains', {
      url: 'syslog+tls://logs.kiln.invalid:6514',
    });
    expect(syslog.status).toBe(200);
    expect(syslog.body.secret).toBeUndefined();
    expect(syslog.body.code_name).toBeNull();

    const listed = await as(a, 'GET', '/log_drains');
    expect(listed.body.log_drains.map((d: any) => d.id)).toEqual([made.body.id, syslog.body.id]);
    expect(listed.body.log_drains[0].secret).toBeUndefined();
    const read = await as(a, 'GET', `/log_drains/${made.body.id}`);
    expect(read.body.secret).toBeUndefined();

    const patched = await as(a, 'PATCH', `/log_drains/${made.body.id}`, {
      url: 'syslog+tcp://logs.kiln.invalid:514',
      code_name: null,
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({
      url: 'syslog+tcp://logs.kiln.invalid:514',
      code_name: null,
    });
    // A syslog drain has no secret to sign with: it cannot become an HTTPS one.
    const toHttps = await as(a, 'PATCH', `/log_drains/${syslog.body.id}`, {
      url: 'https://logs.kiln.invalid/',
    });
    expect(toHttps.status).toBe(400);
    expect(toHttps.body.msg).toMatch(/make a new drain/);

    for (const id of [made.body.id, syslog.body.id]) {
      expect((await as(a, 'DELETE', `/log_drains/${id}`)).status).toBe(200);
      expect((await as(a, 'GET', `/log_drains/${id}`)).status).toBe(404);
    }
    expect((await as(a, 'GET', '/log_drains')).body.log_drains).toEqual([]);
  });

  it('answers bad input with a 4xx and a msg, and changes nothing', async () => {
    const cases: [unknown, number, RegExp][] = [
      [{}, 400, /url/],
      [{ url: 42 }, 400, /url/],
      [{ url: 'not a url' }, 400, /not a valid URL/],
      [{ url: 'http://logs.kiln.invalid/' }, 400, /https:\/\/, syslog\+tcp/],
      [{ url: 'syslog+udp://logs.kiln.invalid:514' }, 400, /syslog\+tcp/],
      [{ url: 'syslog+tcp://logs.kiln.invalid' }, 400, /must give a port/],
      [{ url: 'syslog+tcp://logs.kiln.invalid:514/path' }, 400, /nothing after the port/],
      [{ url: 'https://user:pw@logs.kiln.invalid/' }, 400, /user name or password/],
      [{ url: `https://logs.kiln.invalid/${'x'.repeat(2100)}` }, 400, /at most 2048 bytes/],
      [{ url: 'syslog+tcp://10.1.2.3:514' }, 400, /may not reach it/],
      [{ url: 'https://169.254.169.254/latest' }, 400, /may not reach it/],
      [{ url: 'syslog+tls://[::1]:6514' }, 400, /may not reach it/],
      // Loopback through the allow-list: 127.0.0.1 only, not 127.0.0.2.
      [{ url: 'syslog+tcp://127.0.0.2:514' }, 400, /may not reach it/],
      [{ url: 'https://logs.kiln.invalid/', code_name: 'nope' }, 400, /no code named "nope"/],
      [{ url: 'https://logs.kiln.invalid/', code_name: 7 }, 400, /code_name/],
      [[], 400, /body/],
    ];
    for (const [body, status, msg] of cases) {
      const res = await as(a, 'POST', '/log_drains', body);
      expect({ body, status: res.status }).toEqual({ body, status });
      expect(res.body.msg).toMatch(msg);
    }
    expect((await as(a, 'GET', '/log_drains')).body.log_drains).toEqual([]);

    // At most KILN_QUOTA_LOG_DRAINS (4 here) per project; the other project has its own count.
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      ids.push((await addDrain(a, { url: `https://logs.kiln.invalid/${i}` })).id);
    }
    const over = await as(a, 'POST', '/log_drains', { url: 'https://logs.kiln.invalid/5' });
    expect(over.status).toBeGreaterThanOrEqual(400);
    expect(over.status).toBeLessThan(500);
    expect(over.body.msg).toMatch(/log_drains is 4/);
    expect((await as(a, 'GET', '/log_drains')).body.log_drains).toHaveLength(4);
    const bad = await as(a, 'PATCH', `/log_drains/${ids[0]}`, { url: 'ftp://x/' });
    expect(bad.status).toBe(400);
    expect((await drain(a, ids[0])).url).toBe('https://logs.kiln.invalid/0');
  });

  it("another project can neither see nor touch a project's drains", async () => {
    const mine = await addDrain(a, { url: 'https://logs.kiln.invalid/a' });
    expect((await as(b, 'GET', `/log_drains/${mine.id}`)).status).toBe(404);
    expect((await as(b, 'PATCH', `/log_drains/${mine.id}`, { code_name: null })).status).toBe(404);
    expect((await as(b, 'DELETE', `/log_drains/${mine.id}`)).status).toBe(404);
    expect((await as(b, 'GET', '/log_drains')).body.log_drains).toEqual([]);
    // B's token on A's path.
    const cross = await stack.request('GET', `/2/projects/${a.id}/log_drains`, undefined, b.token);
    expect([401, 403]).toContain(cross.status);
    expect((await drain(a, mine.id)).url).toBe('https://logs.kiln.invalid/a');
  });

  it("ships stdout and stderr to rsyslog in order, tagged; each project's drain gets only its own output", async () => {
    await addDrain(a, { url: `syslog+tcp://127.0.0.1:${rsyslogA.port}` });
    await addDrain(b, { url: `syslog+tcp://127.0.0.1:${rsyslogB.port}` });
    const [ta, tb] = await Promise.all([
      run(a, 'printer', numbered('A', 5)),
      run(b, 'printer', numbered('B', 5)),
    ]);
    expect([ta.status, tb.status]).toEqual(['complete', 'complete']);
    for (const [receiver, task, tag, project] of [
      [rsyslogA, ta, 'A', a],
      [rsyslogB, tb, 'B', b],
    ] as const) {
      await waitUntil(`rsyslog ${tag} has 10 lines`, () => receiver.lines().length >= 10, {
        timeoutMs: 20_000,
        state: () => JSON.stringify(receiver.lines()),
      });
      const lines = receiver.lines();
      // Only this project's task, nothing of the other.
      expect(new Set(lines.map((l) => l.procid))).toEqual(new Set([task.id]));
      expect(lines.every((l) => l.sd.includes(`project_id="${project.id}"`))).toBe(true);
      expect(lines.every((l) => l.app === 'printer')).toBe(true);
      const out = lines.filter((l) => l.msgid === 'stdout');
      const err = lines.filter((l) => l.msgid === 'stderr');
      expect(out.map((l) => l.msg)).toEqual([1, 2, 3, 4, 5].map((i) => `${tag} out ${i}`));
      expect(err.map((l) => l.msg)).toEqual([1, 2, 3, 4, 5].map((i) => `${tag} err ${i}`));
      expect(new Set(out.map((l) => l.severity))).toEqual(new Set(['info']));
      expect(new Set(err.map((l) => l.severity))).toEqual(new Set(['err']));
      expect(lines.every((l) => l.sd.includes(`task_id="${task.id}"`))).toBe(true);
    }
  });

  it('a per-code HTTPS drain gets only that code, in signed JSON lines', async () => {
    const receiver = await https();
    const made = await addDrain(a, { url: receiver.url(), code_name: 'other' });
    const printer = await run(a, 'printer', numbered('P', 2));
    const other = await run(a, 'other', numbered('O', 3));
    expect([printer.status, other.status]).toEqual(['complete', 'complete']);
    await waitUntil('6 lines', () => receiver.lines().length >= 6, { timeoutMs: 20_000 });
    await sleep(1500); // anything of `printer` would have come by now
    const lines = receiver.lines();
    expect(new Set(lines.map((l) => l.task_id))).toEqual(new Set([other.id]));
    expect(lines[0]).toEqual({
      task_id: other.id,
      code: 'other',
      stream: expect.stringMatching(/^std(out|err)$/),
      line: expect.stringMatching(/^O (out|err) 1$/),
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      project_id: a.id,
    });
    expect(lines.filter((l) => l.stream === 'stdout').map((l) => l.line)).toEqual([
      'O out 1',
      'O out 2',
      'O out 3',
    ]);
    expect(lines.filter((l) => l.stream === 'stderr').map((l) => l.line)).toEqual([
      'O err 1',
      'O err 2',
      'O err 3',
    ]);
    for (const batch of receiver.accepted) {
      expect(batch.headers['content-type']).toBe('application/x-ndjson');
      expect(validSignatures(batch as unknown as Received, made.secret!)).toBe(1);
      expect(validSignatures(batch as unknown as Received, 'whsec_' + 'A'.repeat(32))).toBe(0);
    }
    await waitUntil(
      'delivered_lines counted',
      async () => (await drain(a, made.id)).delivered_lines === 6,
    );
  });

  it('an HTTPS receiver failing for a while, then back, gets every line (at-least-once)', async () => {
    let failing = true;
    const receiver = await https(() => (failing ? 503 : 200));
    const made = await addDrain(a, { url: receiver.url() });
    const task = await run(a, 'printer', numbered('R', 20));
    expect(task.status).toBe('complete');
    await waitUntil('a refused batch', async () => (await drain(a, made.id)).failures > 0, {
      timeoutMs: 20_000,
    });
    expect((await drain(a, made.id)).last_error).toBe('receiver answered 503');
    await sleep(2000);
    failing = false;
    await waitUntil('40 lines', () => receiver.lines().length >= 40, { timeoutMs: 20_000 });
    const lines = receiver.lines().filter((l) => l.task_id === task.id);
    const expected = (stream: string) =>
      Array.from({ length: 20 }, (_, i) => `R ${stream === 'stdout' ? 'out' : 'err'} ${i + 1}`);
    for (const stream of ['stdout', 'stderr']) {
      expect(lines.filter((l) => l.stream === stream).map((l) => l.line)).toEqual(expected(stream));
    }
    await waitUntil('failures cleared', async () => (await drain(a, made.id)).failures === 0);
    expect((await drain(a, made.id)).dropped_lines).toBe(0);
  });

  it('rsyslog down for a while, then back on its port, gets every line', async () => {
    const rsyslog = new Rsyslog();
    await rsyslog.start();
    closers.push(() => rsyslog.close());
    const made = await addDrain(b, { url: `syslog+tcp://127.0.0.1:${rsyslog.port}` });
    await rsyslog.stop();
    const task = await run(b, 'other', numbered('D', 10));
    expect(task.status).toBe('complete');
    await waitUntil('a failed attempt', async () => (await drain(b, made.id)).failures > 0, {
      timeoutMs: 20_000,
    });
    expect((await drain(b, made.id)).last_error).toBe('connection refused');
    await rsyslog.start(rsyslog.port);
    await waitUntil('20 lines', () => rsyslog.lines().length >= 20, {
      timeoutMs: 20_000,
      state: () => JSON.stringify(rsyslog.lines()),
    });
    const lines = rsyslog.lines();
    expect(lines.filter((l) => l.msgid === 'stdout').map((l) => l.msg)).toEqual(
      Array.from({ length: 10 }, (_, i) => `D out ${i + 1}`),
    );
    expect(lines.filter((l) => l.msgid === 'stderr').map((l) => l.msg)).toEqual(
      Array.from({ length: 10 }, (_, i) => `D err ${i + 1}`),
    );
  });

  it('a drain down past its buffer drops the lines and counts them; the task finishes normally', async () => {
    const gone = await https();
    const url = gone.url();
    await gone.close();
    closers.pop();
    const droppedBefore = await schedulerMetric('kiln_log_drain_dropped_lines_total');
    const failuresBefore = await schedulerMetric('kiln_log_drain_failures_total');
    const made = await addDrain(b, { url });
    const task = await run(b, 'printer', numbered('X', 15));
    // Nothing on the task's path waits for the drain: it ends as a task without one does.
    expect(task.status).toBe('complete');
    const log = await as(b, 'GET', `/tasks/${task.id}/log`);
    expect(log.body).toContain('X out 15');
    await waitUntil(
      '30 lines dropped',
      async () => (await drain(b, made.id)).dropped_lines === 30,
      {
        timeoutMs: (BUFFER_SECONDS + 20) * 1000,
        intervalMs: 500,
      },
    );
    const seen = await drain(b, made.id);
    expect(seen.delivered_lines).toBe(0);
    expect(seen.last_error).toBe('connection refused');
    expect(await schedulerMetric('kiln_log_drain_dropped_lines_total')).toBeGreaterThanOrEqual(
      droppedBefore + 30,
    );
    expect(await schedulerMetric('kiln_log_drain_failures_total')).toBeGreaterThan(failuresBefore);
  }, 60_000);

  it('ships over TLS to a syslog receiver as RFC 5424 octet-counted frames', async () => {
    const receiver = await new TlsSyslogReceiver().start(cert.key, cert.cert);
    closers.push(() => receiver.close());
    await addDrain(a, { url: `syslog+tls://127.0.0.1:${receiver.port}`, code_name: 'printer' });
    const task = await run(a, 'printer', 'echo "over tls"; echo "to stderr" >&2');
    expect(task.status).toBe('complete');
    await waitUntil('2 messages', () => receiver.messages.length >= 2, { timeoutMs: 20_000 });
    const byStream = (stream: string) => receiver.messages.find((m) => m.includes(` ${stream} [`));
    expect(byStream('stdout')).toMatch(
      new RegExp(
        `^<14>1 \\S+Z kiln printer ${task.id} stdout \\[kiln@32473 project_id="${a.id}" task_id="${task.id}" code="printer" stream="stdout"\\] over tls$`,
      ),
    );
    expect(byStream('stderr')).toMatch(
      new RegExp(`^<11>1 \\S+ kiln printer ${task.id} stderr .* to stderr$`),
    );
  });
});
