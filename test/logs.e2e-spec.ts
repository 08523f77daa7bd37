import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { waitUntil } from './support/kiln';
import { OwnStack } from './support/own-stack';
import { LOG_DIR, freePort, waitForHealthy } from './support/processes';

type Line = Record<string, unknown>;

/**
 * Issue 15, part 3: every process writes JSON lines; the API one access line per request with its
 * request id (`X-Request-Id` in and out); each task transition is one line from the process that
 * made it, so `grep <task id>` over the three processes' output follows a task. Tokens, secrets,
 * env_vars and payloads appear in no line.
 */
describe('logs: JSON lines, access lines, task transitions', () => {
  const stack = new OwnStack('logs', 90);
  const run = randomBytes(4).toString('hex');
  const payloadMarker = `payload-marker-${run}`;
  const envSecret = `env-secret-${run}`;
  const labels = ['api', 'worker', 'scheduler'] as const;
  const logFile = (label: string) => join(LOG_DIR, `logs-${label}.log`);
  let project: { id: string; token: string };
  let other: { id: string; token: string };

  const as = (who: { id: string; token: string }, method: string, path: string, json?: unknown) =>
    stack.request(method, `/2/projects/${who.id}${path}`, json, who.token);

  /** Every line each process wrote so far, parsed (a line that is no JSON fails the test here). */
  function linesOf(label: string): Line[] {
    const text = readFileSync(logFile(label), 'utf8');
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => {
        try {
          return JSON.parse(line) as Line;
        } catch {
          throw new Error(`${label} wrote a line that is not JSON: ${line}`);
        }
      });
  }

  /** `grep <id>` over the three processes' output: the transition lines, in order, per process. */
  function transitionsOf(taskId: string) {
    return labels
      .flatMap((label) =>
        readFileSync(logFile(label), 'utf8')
          .split('\n')
          .filter((line) => line.includes(taskId))
          .map((line) => JSON.parse(line) as Line)
          .filter((line) => line.event === 'task.transition' && line.task_id === taskId)
          .map((line): Line => ({ label, ...line })),
      )
      .sort((a, b) => String(a.time).localeCompare(String(b.time)));
  }

  async function status(who: { id: string; token: string }, id: string) {
    return (await as(who, 'GET', `/tasks/${id}`)).body.status as string;
  }

  async function ended(who: { id: string; token: string }, id: string) {
    let last = '';
    await waitUntil(
      `task ${id} to end`,
      async () => !['queued', 'preparing', 'running'].includes((last = await status(who, id))),
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    return last;
  }

  beforeAll(async () => {
    for (const label of labels) rmSync(logFile(label), { force: true });
    await stack.create({ KILN_RECONCILE_SECONDS: '1', KILN_LOG_LEVEL: 'log' });
    await stack.startApi();
    const schedulerPort = await freePort();
    await stack.startWorker();
    stack.start('scheduler', { KILN_SCHEDULER_HEALTH_PORT: String(schedulerPort) });
    await waitForHealthy(`http://127.0.0.1:${schedulerPort}/healthz`);
    project = await stack.newProject('logs-a');
    other = await stack.newProject('logs-b');
    for (const who of [project, other]) {
      const code = await as(who, 'POST', '/codes', {
        name: 'hello',
        image: 'kiln-test/busybox:latest',
        env_vars: { SECRET_VAR: envSecret },
        retries: 1,
        retries_delay: 0,
      });
      expect(code.status).toBe(200);
    }
  }, 120_000);

  afterAll(async () => {
    await stack.close();
  });

  it('answers the client’s sane X-Request-Id, a new one otherwise, and logs one access line each', async () => {
    const sent = `req-${run}.a:1`;
    const withId = await fetch(`${stack.url}/2/projects/${project.id}/codes`, {
      headers: { authorization: `OAuth ${project.token}`, 'x-request-id': sent },
    });
    expect(withId.status).toBe(200);
    expect(withId.headers.get('x-request-id')).toBe(sent);
    const without = await fetch(
      `${stack.url}/2/projects/${project.id}/codes?oauth=${project.token}`,
    );
    expect(without.status).toBe(200);
    const made = without.headers.get('x-request-id');
    expect(made).toMatch(/^[0-9a-f-]{36}$/);
    const odd = await fetch(`${stack.url}/2/nowhere`, { headers: { 'x-request-id': 'a b' } });
    expect(odd.status).toBe(404);
    const replaced = odd.headers.get('x-request-id');
    expect(replaced).toMatch(/^[0-9a-f-]{36}$/);

    await waitUntil('the access lines', async () =>
      linesOf('api').some((line) => line.request_id === replaced),
    );
    const access = linesOf('api').filter((line) => line.event === 'http.request');
    expect(access.filter((line) => line.request_id === sent)).toEqual([
      expect.objectContaining({
        level: 'info',
        process: 'api',
        method: 'GET',
        route: '/2/projects/:projectId/codes',
        path: `/2/projects/${project.id}/codes`,
        status: 200,
        duration_ms: expect.any(Number),
        project_id: project.id,
      }),
    ]);
    // The oauth query parameter (a token) is not part of the path logged.
    expect(access.filter((line) => line.request_id === made)).toEqual([
      expect.objectContaining({ path: `/2/projects/${project.id}/codes`, status: 200 }),
    ]);
    expect(access.filter((line) => line.request_id === replaced)).toEqual([
      expect.objectContaining({ route: 'unmatched', path: '/2/nowhere', status: 404 }),
    ]);
  });

  it('follows a completed task, a failed one and its retry, and a cancelled one with grep <task id>', async () => {
    const requestId = `queue-${run}`;
    const queued = await fetch(`${stack.url}/2/projects/${project.id}/tasks`, {
      method: 'POST',
      headers: {
        authorization: `OAuth ${project.token}`,
        'content-type': 'application/json',
        'x-request-id': requestId,
      },
      body: JSON.stringify({
        tasks: [
          { code_name: 'hello', payload: JSON.stringify({ marker: payloadMarker }) },
          { code_name: 'hello', payload: JSON.stringify({ marker: payloadMarker, exit: 3 }) },
          { code_name: 'hello', payload: JSON.stringify({ lines: 120, interval: 1 }) },
        ],
      }),
    });
    expect(queued.status).toBe(200);
    expect(queued.headers.get('x-request-id')).toBe(requestId);
    const [complete, failing, long] = (
      (await queued.json()) as { tasks: { id: string }[] }
    ).tasks.map((task) => task.id);
    // Another project's task: its lines are its own.
    const otherTask = (
      await as(other, 'POST', '/tasks', { tasks: [{ code_name: 'hello', payload: '{}' }] })
    ).body.tasks[0].id as string;

    expect(await ended(project, complete)).toBe('complete');
    expect(await ended(project, failing)).toBe('error');
    expect(await ended(other, otherTask)).toBe('complete');
    await waitUntil(
      'the long task to run',
      async () => (await status(project, long)) === 'running',
    );
    // A follower's access line comes when its stream ends (here: the cancel ends the task).
    const follower = fetch(
      `${stack.url}/2/projects/${project.id}/tasks/${long}/log?follow=1&oauth=${project.token}`,
      {
        headers: { 'x-request-id': `follow-${run}` },
      },
    ).then((res) => res.text());
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await as(project, 'POST', `/tasks/${long}/cancel`)).status).toBe(200);
    await follower;
    const retry = (await as(project, 'GET', `/tasks/${failing}`)).body.retry_task_id as string;
    expect(retry).toMatch(/^[0-9a-f]{24}$/);
    expect(await ended(project, retry)).toBe('error');

    const worker = `${stack.env.KILN_QUEUE_PREFIX}-worker`;
    const base = { project_id: project.id, code: 'hello' };
    await waitUntil('the last transition lines', async () => transitionsOf(retry).length === 4);
    const pick = (lines: Line[]) =>
      lines.map(({ label, from, to, attempt, worker: w, request_id, project_id, code }) => ({
        label,
        from,
        to,
        attempt,
        worker: w,
        request_id,
        project_id,
        code,
      }));
    expect(pick(transitionsOf(complete))).toEqual([
      {
        label: 'api',
        from: null,
        to: 'queued',
        attempt: 0,
        worker: undefined,
        request_id: requestId,
        ...base,
      },
      {
        label: 'worker',
        from: 'queued',
        to: 'preparing',
        attempt: 1,
        worker,
        request_id: undefined,
        ...base,
      },
      {
        label: 'worker',
        from: 'preparing',
        to: 'running',
        attempt: 1,
        worker,
        request_id: undefined,
        ...base,
      },
      {
        label: 'worker',
        from: 'running',
        to: 'complete',
        attempt: 1,
        worker,
        request_id: undefined,
        ...base,
      },
    ]);
    expect(pick(transitionsOf(failing)).map(({ label, from, to }) => [label, from, to])).toEqual([
      ['api', null, 'queued'],
      ['worker', 'queued', 'preparing'],
      ['worker', 'preparing', 'running'],
      ['worker', 'running', 'error'],
    ]);
    // The automatic retry is queued by the worker that recorded the failure.
    expect(pick(transitionsOf(retry)).map(({ label, from, to }) => [label, from, to])).toEqual([
      ['worker', null, 'queued'],
      ['worker', 'queued', 'preparing'],
      ['worker', 'preparing', 'running'],
      ['worker', 'running', 'error'],
    ]);
    const cancelled = pick(transitionsOf(long));
    expect(cancelled.map(({ label, from, to }) => [label, from, to])).toEqual([
      ['api', null, 'queued'],
      ['worker', 'queued', 'preparing'],
      ['worker', 'preparing', 'running'],
      ['api', 'running', 'cancelled'],
    ]);
    expect(cancelled[3]).toMatchObject({ worker, attempt: 1, ...base });
    expect(pick(transitionsOf(otherTask)).map(({ project_id }) => project_id)).toEqual(
      Array(4).fill(other.id),
    );

    const access = linesOf('api').filter((line) => line.event === 'http.request');
    expect(access.filter((line) => line.request_id === `follow-${run}`)).toEqual([
      expect.objectContaining({
        route: '/2/projects/:projectId/tasks/:taskId/log',
        path: `/2/projects/${project.id}/tasks/${long}/log`,
        status: 200,
      }),
    ]);
  }, 120_000);

  it('every line of the three processes is JSON with level, time, process and pid; no token, secret or payload', async () => {
    // Stopped: their last lines are written.
    await stack.stopProcesses();
    for (const label of labels) {
      const lines = linesOf(label);
      expect(lines.length).toBeGreaterThan(3);
      for (const line of lines) {
        expect(line).toEqual(
          expect.objectContaining({
            level: expect.stringMatching(/^(fatal|error|warn|info|debug|trace)$/),
            time: expect.any(String),
            process: label,
            pid: expect.any(Number),
            msg: expect.any(String),
          }),
        );
      }
    }
    const text = labels.map((label) => readFileSync(logFile(label), 'utf8')).join('\n');
    expect(text).toContain(project.id);
    for (const secret of [project.token, other.token, stack.adminToken, payloadMarker, envSecret]) {
      expect({ secret, found: text.includes(secret) }).toEqual({ secret, found: false });
    }
  });
});
