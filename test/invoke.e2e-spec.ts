import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kiln, KilnTimeoutError } from '@kiln/client';
import {
  Answer,
  call,
  e2e,
  expectStderrInterleaved,
  getTask,
  grantCluster,
  newProject,
  registerCode,
  taskLog,
  TestProject,
  waitForTask,
  waitUntil,
} from './support/kiln';
import { OwnStack } from './support/own-stack';
import { ROOT } from './support/processes';
import { OpenRequest } from './support/raw-http';

/** A cluster no worker of the shared stack serves: its tasks stay queued until cancelled. */
const IDLE = 'invoke-idle';
/** Long enough that only the task's end, never the wait, answers these invokes. */
const LONG_WAIT = 120;

const invokePath = (p: TestProject, code: string, query = '') =>
  `/2/projects/${p.projectId}/codes/${encodeURIComponent(code)}/invoke${query}`;

/** `POST …/codes/{code}/invoke` with the project's token (or `token`), answered whole. */
function invoke(
  p: TestProject,
  code: string,
  body: unknown,
  query = `?wait=${LONG_WAIT}`,
  token = p.token,
): Promise<Answer> {
  return call('POST', invokePath(p, code, query), { token, json: body });
}

/** An invoke on a connection of its own, which the test may drop while it waits. */
function openInvoke(p: TestProject, code: string, body: unknown, query = `?wait=${LONG_WAIT}`) {
  const open = new OpenRequest({
    url: e2e().url,
    method: 'POST',
    path: invokePath(p, code, query),
    headers: { authorization: `OAuth ${p.token}`, 'content-type': 'application/json' },
  });
  open.end(JSON.stringify(body));
  return open;
}

async function tasksOf(p: TestProject, query = ''): Promise<any[]> {
  const res = await call('GET', `/2/projects/${p.projectId}/tasks?per_page=100${query}`, {
    token: p.token,
  });
  expect(res.status).toBe(200);
  return res.body.tasks as any[];
}

/** The one task of `p` on the idle cluster with `label`, once it is queued. */
async function idleTask(p: TestProject, label: string): Promise<any> {
  let found: any[] = [];
  await waitUntil(
    `the invoke's task labelled ${label}`,
    async () => (found = await tasksOf(p, `&label=${label}`)).length > 0,
    { timeoutMs: 30_000 },
  );
  expect(found).toHaveLength(1);
  return found[0];
}

/**
 * Issue 17, part 5: `POST …/codes/{name}/invoke` queues one task at the top priority through the
 * same path as `POST tasks` and answers its outcome and output when it ends, or 504 with its id
 * when `wait` passes first; it waits on the live feed, ends when the task is cancelled, frees its
 * slot when the client goes, and is capped per project and per API process.
 */
describe('synchronous invoke', () => {
  let a: TestProject;
  let b: TestProject;

  beforeAll(async () => {
    [a, b] = [await newProject('invoke-a'), await newProject('invoke-b')];
    await registerCode(a, 'hello');
    await registerCode(b, 'mine');
    await grantCluster(a, IDLE);
  });

  it('a cold code invoked answers complete with its output, at priority 2, its log as GET …/log gives it', async () => {
    const res = await invoke(a, 'hello', { payload: '{"hello":"invoke"}', label: 'cold' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{24}$/),
      status: 'complete',
      msg: '',
      duration: expect.any(Number),
      output: '{"hello":"invoke"}\n',
      truncated: false,
    });
    const task = await getTask(a, res.body.id);
    expect(task).toMatchObject({
      status: 'complete',
      priority: 2,
      label: 'cold',
      code_name: 'hello',
      duration: res.body.duration,
    });
    expect((await taskLog(a, res.body.id)).text).toBe(res.body.output);
  });

  it('a failing task answers 200 with status error, its msg and its STDOUT+STDERR', async () => {
    const payload = '{"stderr":"boom","exit":3}';
    const res = await invoke(a, 'hello', { payload });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'error', msg: 'exit code 3', truncated: false });
    expectStderrInterleaved(res.body.output, `${payload}\n`, 'boom\n');
  });

  it('a task longer than wait answers 504 with its id; it goes on and completes', async () => {
    const res = await invoke(a, 'hello', { payload: '{"sleep":6}' }, '?wait=1');
    expect(res.status).toBe(504);
    expect(res.body).toEqual({
      msg: `Task ${res.body.id} did not end within 1 s: it goes on; poll GET tasks/${res.body.id}`,
      id: expect.stringMatching(/^[0-9a-f]{24}$/),
    });
    const task = await waitForTask(a, res.body.id);
    expect(task.status).toBe('complete');
  });

  it('a cancel of the queued task ends the invoke at once: cancelled, no output', async () => {
    const open = openInvoke(a, 'hello', { payload: '{}', cluster: IDLE, label: 'queued' });
    const task = await idleTask(a, 'queued');
    expect(task).toMatchObject({ status: 'queued', priority: 2, cluster: IDLE });
    const cancelled = Date.now();
    const res = await call('POST', `/2/projects/${a.projectId}/tasks/${task.id}/cancel`, {
      token: a.token,
    });
    expect(res.status).toBe(200);
    const answer = await open.answer;
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      id: task.id,
      status: 'cancelled',
      msg: 'Cancelled',
      duration: 0,
      output: '',
      truncated: false,
    });
    // Well before the wait: the cancel ended it (the feed, or at worst the watch's 1 s poll).
    expect(Date.now() - cancelled).toBeLessThan(LONG_WAIT * 1000 - 60_000);
  });

  it('a cancel of the running task ends the invoke: cancelled', async () => {
    const open = openInvoke(a, 'hello', { payload: '{"lines":1,"sleep":60}', label: 'running' });
    let running: any[] = [];
    await waitUntil(
      'the invoked task to run',
      async () =>
        (running = await tasksOf(a, '&label=running')).some((t) => t.status === 'running'),
      { timeoutMs: 60_000, state: () => JSON.stringify(running) },
    );
    const [task] = running;
    await call('POST', `/2/projects/${a.projectId}/tasks/${task.id}/cancel`, { token: a.token });
    const answer = await open.answer;
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ id: task.id, status: 'cancelled', msg: 'Cancelled' });
  });

  it('bad input is a 400 with msg and creates no task', async () => {
    const c = await newProject('invoke-bad');
    await registerCode(c, 'hello');
    const cases: [string, unknown, RegExp, number?][] = [
      ['?wait=0', { payload: '{}' }, /^wait must be .*1.*300/],
      ['?wait=abc', { payload: '{}' }, /^wait must be an integer from 1 to 300/],
      ['?wait=301', { payload: '{}' }, /^wait must be .*1.*300/],
      ['?wait=1.5', { payload: '{}' }, /^wait must be an integer from 1 to 300/],
      ['?wait=5&wait=6', { payload: '{}' }, /^wait must be an integer from 1 to 300/],
      ['?wait=5', [1, 2], /^body must be/],
      ['?wait=5', 'text', /^body must be/],
      ['?wait=5', { payload: 7 }, /payload/],
      ['?wait=5', { payload: '{}', timeout: -1 }, /timeout/],
      ['?wait=5', { payload: '{}', delay: 'soon' }, /delay/],
      ['?wait=5', { payload: '{}', cluster: 'bad name!' }, /cluster/],
      ['?wait=5', { payload: '{}', priority: 1 }, /^priority cannot be set on an invoke/],
      ['?wait=5', { payload: '{}', priority: 2 }, /^priority cannot be set on an invoke/],
      // As POST tasks answers a payload past KILN_PAYLOAD_MAX_BYTES.
      ['?wait=5', { payload: 'x'.repeat(65537) }, /^payload is larger than 65536 bytes/, 413],
    ];
    for (const [query, body, msg, status = 400] of cases) {
      const res = await invoke(c, 'hello', body, query);
      const asked = { query, body: JSON.stringify(body).slice(0, 80) };
      expect({ ...asked, status: res.status }).toEqual({ ...asked, status });
      expect(res.body.msg).toMatch(msg);
    }
    const unknown = await invoke(c, 'nope', { payload: '{}' });
    expect(unknown).toMatchObject({ status: 404, body: { msg: 'Code "nope" not found' } });
    expect(await tasksOf(c)).toEqual([]);
  });

  it("project B cannot invoke project A's code: 401 on A's path, 404 on its own", async () => {
    const before = (await tasksOf(a)).length;
    const onA = await invoke(a, 'hello', { payload: '{}' }, '?wait=5', b.token);
    expect(onA.status).toBe(401);
    expect(onA.body.msg).toEqual(expect.any(String));
    const onB = await invoke(b, 'hello', { payload: '{}' }, '?wait=5');
    expect(onB).toMatchObject({ status: 404, body: { msg: 'Code "hello" not found' } });
    expect(await tasksOf(a)).toHaveLength(before);
    expect(await tasksOf(b)).toEqual([]);
    // A read token of A's own may not queue either.
    const read = await call('POST', `/2/projects/${a.projectId}/tokens`, {
      token: e2e().adminToken,
      json: { role: 'read' },
    });
    const byRead = await invoke(a, 'hello', { payload: '{}' }, '?wait=5', read.body.token);
    expect(byRead.status).toBe(403);
    expect(await tasksOf(a)).toHaveLength(before);
  });

  it("past the project's invokes quota a 429 that queues nothing; a dropped client frees its slot", async () => {
    const d = await newProject('invoke-quota');
    await registerCode(d, 'hello');
    await grantCluster(d, IDLE);
    const set = await call('PUT', `/2/projects/${d.projectId}/quotas`, {
      token: e2e().adminToken,
      json: { invokes: 1 },
    });
    expect(set.status).toBe(200);
    expect(set.body.quotas.invokes).toBe(1);
    const held = openInvoke(d, 'hello', { payload: '{}', cluster: IDLE, label: 'held' });
    const task = await idleTask(d, 'held');
    const refused = await invoke(d, 'hello', { payload: '{}', label: 'refused' });
    expect(refused.status).toBe(429);
    expect(refused.body.msg).toBe(
      'Quota exceeded: invokes is 1 (at most 1 invokes waiting for their task per API process; the project has 1)',
    );
    expect(await tasksOf(d, '&label=refused')).toEqual([]);
    // Another project's invokes are not held back by D's.
    const other = await invoke(a, 'hello', { payload: '{"other":1}' });
    expect(other.body).toMatchObject({ status: 'complete', output: '{"other":1}\n' });

    // The client goes away: its slot is freed (and its task goes on, queued).
    held.destroy();
    await held.closed;
    let after: Answer | undefined;
    await waitUntil(
      'the dropped invoke to free its slot',
      async () =>
        (after = await invoke(d, 'hello', { payload: '{"after":1}', label: 'after' })).status !==
        429,
      { timeoutMs: 30_000, intervalMs: 250, state: () => JSON.stringify(after?.body) },
    );
    expect(after!.status).toBe(200);
    expect(after!.body).toMatchObject({ status: 'complete', output: '{"after":1}\n' });
    expect((await getTask(d, task.id)).status).toBe('queued');
    await call('POST', `/2/projects/${d.projectId}/tasks/${task.id}/cancel`, { token: d.token });
  });

  describe('clients', () => {
    let kiln: Kiln;

    beforeAll(() => {
      kiln = new Kiln({
        url: e2e().url,
        projectId: a.projectId,
        token: a.token,
        cwd: null,
        configFile: null,
        env: {},
      });
    });

    it('kiln.codes.invoke resolves with the outcome; a passed wait rejects with KilnTimeoutError naming the task', async () => {
      const done = await kiln.codes.invoke('hello', { via: 'client' }, { wait: LONG_WAIT });
      expect(done).toEqual({
        id: expect.stringMatching(/^[0-9a-f]{24}$/),
        status: 'complete',
        msg: '',
        duration: expect.any(Number),
        output: '{"via":"client"}\n',
        truncated: false,
      });
      const failed = await kiln.codes.invoke('hello', '{"exit":2}', { wait: LONG_WAIT });
      expect(failed).toMatchObject({ status: 'error', msg: 'exit code 2' });

      const error = await kiln.codes
        .invoke('hello', { sleep: 5 }, { wait: 1, label: 'client-late' })
        .then(
          () => undefined,
          (caught: unknown) => caught,
        );
      expect(error).toBeInstanceOf(KilnTimeoutError);
      const late = error as KilnTimeoutError;
      expect(late.status).toBe(504);
      expect(late.taskId).toMatch(/^[0-9a-f]{24}$/);
      expect(late.msg).toMatch(/^Task [0-9a-f]{24} did not end within 1 s/);
      expect((await kiln.tasks.wait(late.taskId!, { timeoutMs: 60_000 })).status).toBe('complete');
    });

    /** The built `kiln` binary with the project's settings. */
    function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
      const child = spawn(join(ROOT, 'dist/apps/cli/src/main.js'), args, {
        cwd: mkdtempSync(join(tmpdir(), 'kiln-invoke-')),
        env: {
          PATH: process.env.PATH!,
          HOME: mkdtempSync(join(tmpdir(), 'kiln-invoke-home-')),
          KILN_URL: e2e().url,
          KILN_PROJECT_ID: a.projectId,
          KILN_TOKEN: a.token,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const outcome = { code: null as number | null, stdout: '', stderr: '' };
      child.stdout.on('data', (data: Buffer) => (outcome.stdout += data.toString()));
      child.stderr.on('data', (data: Buffer) => (outcome.stderr += data.toString()));
      return new Promise((resolve, reject) => {
        child.on('error', reject);
        child.on('close', (code) => resolve({ ...outcome, code }));
      });
    }

    it('kiln invoke prints the output and exits 0; a failure exits 1 saying why; a passed --wait exits 75 naming the task', async () => {
      const ok = await cli(['invoke', 'hello', '--payload', '{"via":"cli"}']);
      expect(ok).toEqual({ code: 0, stdout: '{"via":"cli"}\n', stderr: '' });

      const failed = await cli(['invoke', 'hello', '--payload', '{"exit":4}']);
      expect(failed.code).toBe(1);
      expect(failed.stdout).toBe('{"exit":4}\n');
      expect(failed.stderr).toMatch(/^task [0-9a-f]{24} error: exit code 4\n$/);

      const late = await cli(['invoke', 'hello', '--payload', '{"sleep":5}', '--wait', '1']);
      expect(late.code).toBe(75);
      expect(late.stdout).toBe('');
      const id = /^Task ([0-9a-f]{24}) did not end within 1 s/.exec(late.stderr)?.[1];
      expect(id).toBeDefined();
      expect((await waitForTask(a, id!)).status).toBe('complete');

      const json = await cli(['invoke', 'hello', '--payload', '{"j":1}', '--json']);
      expect(json.code).toBe(0);
      expect(JSON.parse(json.stdout)).toMatchObject({ status: 'complete', output: '{"j":1}\n' });

      const usage = await cli(['invoke', 'hello', '--wait', '301']);
      expect(usage.code).toBe(2);
      expect(usage.stderr).toMatch(/--wait wants a whole number from 1 to 300, got "301"/);
      const priority = await cli(['invoke', 'hello', '--priority', '1']);
      expect(priority.code).toBe(2);
    });
  });
});

/**
 * The process-wide cap (`KILN_API_MAX_INVOKES`), on a stack of its own with no worker: every task
 * stays queued, so each invoke holds its slot until it is cancelled.
 */
describe('synchronous invoke: the API process cap', () => {
  const stack = new OwnStack('invoke', 120);

  beforeAll(async () => {
    await stack.create({ KILN_API_MAX_INVOKES: '2' });
    await stack.startApi();
  });

  afterAll(async () => {
    await stack.close();
  });

  it('past KILN_API_MAX_INVOKES every project gets 429 with Retry-After; a cancel frees a slot', async () => {
    const x = await stack.newProject('cap-x');
    const y = await stack.newProject('cap-y');
    for (const p of [x, y]) {
      const code = await stack.request(
        'POST',
        `/2/projects/${p.id}/codes`,
        { name: 'job', image: 'kiln-test/busybox:latest' },
        p.token,
      );
      expect(code.status).toBe(200);
    }
    const open = (p: { id: string; token: string }) => {
      const request = new OpenRequest({
        url: stack.url,
        method: 'POST',
        path: `/2/projects/${p.id}/codes/job/invoke?wait=${LONG_WAIT}`,
        headers: { authorization: `OAuth ${p.token}`, 'content-type': 'application/json' },
      });
      request.end('{"payload":"{}"}');
      return request;
    };
    const xApi = stack.projectApi(x);
    const held = [open(x), open(x)];
    let queued: any[] = [];
    await waitUntil('both invokes to queue', async () => {
      queued = (await xApi('GET', '/tasks')).tasks as any[];
      return queued.length === 2;
    });
    const full = {
      msg: 'This API process already holds 2 waiting invokes, its most (KILN_API_MAX_INVOKES): retry later',
    };
    for (const p of [x, y]) {
      const refused = new OpenRequest({
        url: stack.url,
        method: 'POST',
        path: `/2/projects/${p.id}/codes/job/invoke?wait=5`,
        headers: { authorization: `OAuth ${p.token}`, 'content-type': 'application/json' },
      });
      refused.end('{"payload":"{}"}');
      const answer = await refused.answer;
      expect(answer.status).toBe(429);
      expect(answer.body).toEqual(full);
      expect(answer.headers['retry-after']).toBe('5');
    }
    expect((await stack.projectApi(y)('GET', '/tasks')).tasks).toEqual([]);
    expect(held.every((request) => request.status === undefined)).toBe(true);

    await xApi('POST', `/tasks/${queued[0].id}/cancel`);
    const ended = await Promise.race(held.map((request) => request.answer));
    expect(ended).toMatchObject({ status: 200, body: { id: queued[0].id, status: 'cancelled' } });
    const yHeld = open(y);
    let yTasks: any[] = [];
    await waitUntil('Y to get the freed slot', async () => {
      yTasks = (await stack.projectApi(y)('GET', '/tasks')).tasks as any[];
      return yTasks.length === 1 || yHeld.status !== undefined;
    });
    expect(yHeld.status).toBeUndefined();
    expect(yTasks).toHaveLength(1);
    await xApi('POST', `/tasks/${queued[1].id}/cancel`);
    await stack.projectApi(y)('POST', `/tasks/${yTasks[0].id}/cancel`);
    expect((await Promise.all([...held, yHeld].map((r) => r.answer))).map((r) => r.status)).toEqual(
      [200, 200, 200],
    );
  });
});
