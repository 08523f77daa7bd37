import type { ChildProcess } from 'node:child_process';
import { Client } from 'pg';
import { newId } from '@kiln/common';
import { waitUntil } from './support/kiln';
import { OwnStack } from './support/own-stack';
import { sleep, stopApp } from './support/processes';
import { Receiver } from './support/receiver';

const FINAL = ['complete', 'error', 'cancelled', 'killed', 'timeout'];

/**
 * Retention (issue 14): the scheduler's leader deletes finished tasks past their project's
 * retention with their logs and webhook deliveries, and nothing else. A stack of its own (API,
 * worker, and the schedulers each test starts), so that the election and the purge are this
 * suite's alone; tasks run for real, then are made old by moving their times back in Postgres.
 * Passes repeat every second here (`KILN_RETENTION_INTERVAL_SECONDS=1`).
 */
describe('retention', () => {
  const stack = new OwnStack('retention', 50);
  const receiver = new Receiver();
  let db: Client;
  type Project = { id: string; token: string };
  let a: Project;
  let b: Project;
  const schedulers = new Set<ChildProcess>();

  const as = (project: Project, method: string, path: string, json?: unknown) =>
    stack.request(method, `/2/projects/${project.id}${path}`, json, project.token);

  /** A project with code `job` (the test image's default command) and a webhook subscription. */
  async function project(name: string): Promise<Project> {
    const made = await stack.newProject(name);
    const code = await as(made, 'POST', '/codes', {
      name: 'job',
      image: 'kiln-test/busybox:latest',
    });
    const hook = await as(made, 'POST', '/webhooks', {
      url: `http://127.0.0.1:${receiver.port}/${name}`,
      events: ['task.complete', 'task.error'],
    });
    expect([code.status, hook.status]).toEqual([200, 200]);
    return made;
  }

  async function queue(p: Project, payload: unknown, extra: Record<string, unknown> = {}) {
    const res = await as(p, 'POST', '/tasks', {
      tasks: [{ code_name: 'job', payload: JSON.stringify(payload), ...extra }],
    });
    expect(res.status).toBe(200);
    return res.body.tasks[0].id as string;
  }

  async function statusOf(p: Project, id: string): Promise<string> {
    return (await as(p, 'GET', `/tasks/${id}`)).body.status as string;
  }

  async function finished(p: Project, id: string): Promise<string> {
    let status = '';
    await waitUntil(
      `task ${id} ending`,
      async () => FINAL.includes((status = await statusOf(p, id))),
      {
        timeoutMs: 90_000,
        state: () => `it is ${status}`,
      },
    );
    return id;
  }

  /** Moves a task's times back as if it had ended `days` ago (and started just before). */
  async function endedDaysAgo(id: string, days: number): Promise<void> {
    await db.query(
      `UPDATE tasks SET created_at = now() - $2::float8 * interval '1 day' - interval '1 minute',
                        start_time = now() - $2::float8 * interval '1 day' - interval '30 seconds',
                        end_time = now() - $2::float8 * interval '1 day'
        WHERE id = $1`,
      [id, days],
    );
  }

  async function createdDaysAgo(id: string, days: number): Promise<void> {
    await db.query(
      `UPDATE tasks SET created_at = now() - $2::float8 * interval '1 day',
                        start_time = CASE WHEN start_time IS NOT NULL
                                          THEN now() - $2::float8 * interval '1 day' END
        WHERE id = $1`,
      [id, days],
    );
  }

  /** What Postgres holds of each task: its row, its log chunks, its deliveries. */
  async function held(ids: string[]): Promise<Record<string, [number, number, number]>> {
    const { rows } = await db.query<{
      id: string;
      task: number;
      chunks: number;
      deliveries: number;
    }>(
      `SELECT i.id,
              (SELECT count(*) FROM tasks WHERE id = i.id)::int AS task,
              (SELECT count(*) FROM task_log_chunks WHERE task_id = i.id)::int AS chunks,
              (SELECT count(*) FROM webhook_deliveries WHERE task_id = i.id)::int AS deliveries
         FROM unnest($1::text[]) AS i(id)`,
      [ids],
    );
    return Object.fromEntries(rows.map((row) => [row.id, [row.task, row.chunks, row.deliveries]]));
  }

  async function present(ids: string[]): Promise<number> {
    const { rows } = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1)`,
      [ids],
    );
    return rows[0].n;
  }

  /** Starts a scheduler replica; resolves once it is up (its webhook loop says so). */
  async function startScheduler(name: string, extra: Record<string, string> = {}) {
    const child = stack.start('scheduler', { KILN_SCHEDULER_ID: name, ...extra }, name);
    schedulers.add(child);
    child.once('exit', () => schedulers.delete(child));
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitUntil(`scheduler ${name} up`, () => /delivering webhooks/.test(output), {
      timeoutMs: 60_000,
      state: () => `its output: ${output.slice(-500)}`,
    });
    return { child, output: () => output };
  }

  async function stopSchedulers(): Promise<void> {
    await Promise.all([...schedulers].map((child) => stopApp(child)));
  }

  beforeAll(async () => {
    await receiver.start();
    await stack.create({
      KILN_RETENTION_INTERVAL_SECONDS: '1',
      KILN_LEADER_LEASE_SECONDS: '3',
    });
    await stack.startApi();
    await stack.startWorker();
    db = new Client({ connectionString: stack.database.url });
    await db.connect();
    a = await project('a');
    b = await project('b');
  });

  afterAll(async () => {
    await stopSchedulers();
    await db?.end();
    await stack.close();
    await receiver.close();
  });

  afterEach(stopSchedulers);

  it('retention_days is the admin’s: 1-3650 or null; bad values 400 and nothing written', async () => {
    const path = `/2/projects/${a.id}`;
    const own = await stack.request('PATCH', path, { retention_days: 5 }, a.token);
    expect(own.status).toBe(403);
    expect(own.body.msg).toMatch(/admin/);
    for (const [body, message] of [
      [{ retention_days: 0 }, /retention_days must be at least 1/],
      [{ retention_days: -1 }, /retention_days must be at least 1/],
      [{ retention_days: 3651 }, /retention_days must be at most 3650/],
      [{ retention_days: 'x' }, /retention_days/],
      [{ retention_days: true }, /retention_days/],
      // One bad field refuses the whole request: max_running is not written either.
      [{ retention_days: 0, max_running: 3 }, /retention_days/],
      [{ max_running: 3, retention_days: 1e6 }, /retention_days/],
    ] as const) {
      const res = await stack.request('PATCH', path, body);
      expect({ status: res.status, msg: res.body.msg }).toEqual({
        status: 400,
        msg: expect.stringMatching(message),
      });
    }
    expect((await stack.request('GET', path)).body).toMatchObject({
      retention_days: null,
      max_running: null,
    });

    const set = await stack.request('PATCH', path, { retention_days: 7 });
    expect(set.status).toBe(200);
    expect(set.body.project).toMatchObject({ id: a.id, retention_days: 7, max_running: null });
    // The project's own token reads it; the other project keeps the operator's default.
    expect((await stack.request('GET', path, undefined, a.token)).body.retention_days).toBe(7);
    expect((await stack.request('GET', `/2/projects/${b.id}`)).body.retention_days).toBeNull();
    // max_running alone leaves retention_days as it is; null goes back to the default.
    await stack.request('PATCH', path, { max_running: 2 });
    expect((await stack.request('GET', path)).body).toMatchObject({
      retention_days: 7,
      max_running: 2,
    });
    const cleared = await stack.request('PATCH', path, { retention_days: null, max_running: null });
    expect(cleared.body.project).toMatchObject({ retention_days: null, max_running: null });
  });

  it("deletes old finished tasks of both projects with their logs and deliveries; A's 1 day leaves B on 30", async () => {
    expect(
      (await stack.request('PATCH', `/2/projects/${a.id}`, { retention_days: 1 })).status,
    ).toBe(200);
    const doomed = {
      aComplete: await finished(a, await queue(a, { lines: 3 })),
      aError: await finished(a, await queue(a, { lines: 2, exit: 3 })),
      bOld: await finished(b, await queue(b, { lines: 3 })),
    };
    const kept = {
      // Within A's day.
      aRecent: await finished(a, await queue(a, { lines: 1 })),
      // Past A's day, within B's 30.
      bTwoDays: await finished(b, await queue(b, { lines: 1 })),
      // The retry of A's old failure, itself recent.
      aRetry: '',
      // Old, but never ended: queued (delayed) and running.
      aQueued: await queue(a, {}, { delay: 3600 }),
      bQueued: await queue(b, {}, { delay: 3600 }),
      aRunning: await queue(a, { sleep: 120 }),
    };
    const retried = await as(a, 'POST', `/tasks/${doomed.aError}/retry`, {});
    expect(retried.status).toBe(200);
    kept.aRetry = await finished(a, retried.body.tasks[0].id as string);
    await waitUntil(
      'the sleeper running',
      async () => (await statusOf(a, kept.aRunning)) === 'running',
    );

    await endedDaysAgo(doomed.aComplete, 2);
    await endedDaysAgo(doomed.aError, 2);
    await endedDaysAgo(doomed.bOld, 31);
    await endedDaysAgo(kept.aRecent, 0.5);
    await endedDaysAgo(kept.bTwoDays, 2);
    for (const id of [kept.aQueued, kept.bQueued, kept.aRunning]) await createdDaysAgo(id, 400);

    // Every finished one has a log and deliveries before, so that their absence after means
    // something.
    const finishedIds = [doomed.aComplete, doomed.aError, doomed.bOld, kept.aRecent, kept.bTwoDays];
    await waitUntil('logs and deliveries written', async () => {
      const now = await held([...finishedIds, kept.aRunning]);
      return (
        finishedIds.every((id) => now[id][1] > 0 && now[id][2] > 0) && now[kept.aRunning][1] > 0
      );
    });
    const keptBefore = await held(Object.values(kept));

    await startScheduler('sched-1');
    await waitUntil(
      'the old tasks deleted',
      async () => (await present(Object.values(doomed))) === 0,
      {
        timeoutMs: 30_000,
        state: async () => JSON.stringify(await held(Object.values(doomed))),
      },
    );

    expect(Object.values(await held(Object.values(doomed)))).toEqual(
      Object.values(doomed).map(() => [0, 0, 0]),
    );
    // What stays stays whole (a delivery may have been sent meanwhile, none deleted). The running
    // sleeper's log may have grown meanwhile (its writer flushes a chunk at a time): at least as
    // much as before.
    const keptAfter = await held(Object.values(kept));
    const [task, chunks, deliveries] = keptAfter[kept.aRunning];
    expect(task).toBe(1);
    expect(chunks).toBeGreaterThanOrEqual(keptBefore[kept.aRunning][1]);
    expect(deliveries).toBeGreaterThanOrEqual(keptBefore[kept.aRunning][2]);
    delete keptAfter[kept.aRunning];
    delete keptBefore[kept.aRunning];
    expect(keptAfter).toEqual(keptBefore);
    expect(await statusOf(a, kept.aRunning)).toBe('running');
    expect(await statusOf(a, kept.aQueued)).toBe('queued');

    // A deleted task is any unknown task: 404 with the same {"msg"}, its log too.
    const unknown = await as(a, 'GET', `/tasks/${newId()}`);
    expect(unknown).toEqual({ status: 404, body: { msg: expect.any(String) } });
    for (const [p, id] of [
      [a, doomed.aComplete],
      [b, doomed.bOld],
    ] as const) {
      expect(await as(p, 'GET', `/tasks/${id}`)).toEqual(unknown);
      expect((await as(p, 'GET', `/tasks/${id}/log`)).status).toBe(404);
    }
    // The retry of a deleted task reads as before, naming its original.
    const retry = await as(a, 'GET', `/tasks/${kept.aRetry}`);
    expect(retry.status).toBe(200);
    expect(retry.body).toMatchObject({ status: 'error', original_task_id: doomed.aError });
    expect((await as(a, 'GET', `/tasks/${kept.aRecent}/log`)).status).toBe(200);
    const listed = (await as(a, 'GET', '/tasks?per_page=100')).body.tasks.map(
      (task: { id: string }) => task.id,
    );
    expect(listed).not.toContain(doomed.aComplete);
    expect(listed).toContain(kept.aRecent);

    await as(a, 'POST', `/tasks/${kept.aRunning}/cancel`);
    await as(a, 'POST', `/tasks/${kept.aQueued}/cancel`);
    await as(b, 'POST', `/tasks/${kept.bQueued}/cancel`);
  });

  it('only the leader purges: a standby leaves old tasks alone until it takes the lease', async () => {
    const old = await finished(b, await queue(b, {}));
    await endedDaysAgo(old, 40);
    // Someone else holds the lease for an hour.
    await db.query(
      `INSERT INTO leader_leases (name, holder, term, expires_at)
       VALUES ('scheduler', 'elsewhere', 100, now() + interval '1 hour')
       ON CONFLICT (name) DO UPDATE SET holder = 'elsewhere', term = leader_leases.term + 1,
                                         expires_at = now() + interval '1 hour'`,
    );
    const standby = await startScheduler('standby');
    // A fixed stretch, not a wait for something: four passes' worth of time as a standby.
    await sleep(4000);
    expect(await present([old])).toBe(1);
    expect(standby.output()).not.toMatch(/retention: deleted/);

    await db.query(`UPDATE leader_leases SET expires_at = now() WHERE name = 'scheduler'`);
    await waitUntil('the standby, now leading, purging', async () => (await present([old])) === 0, {
      timeoutMs: 20_000,
    });
    expect(standby.output()).toMatch(/leader, term \d+/);
  });

  it('SIGTERM mid-pass stops it within a batch; the next leader carries on to the end', async () => {
    const ids = Array.from({ length: 20 }, () => newId());
    await db.query(
      `INSERT INTO tasks (id, project_id, code_id, code_revision_id, code_name, code_rev, status,
                          priority, payload, timeout, cluster, run_at, created_at, updated_at,
                          start_time, end_time)
       SELECT i, $2, c.id, c.latest_revision_id, c.name, c.rev, 'complete', 0, '{}', 60,
              'default', t, t, t, t, t
         FROM unnest($1::text[]) AS i,
              (SELECT now() - interval '40 days' AS t) AS ts,
              (SELECT * FROM codes WHERE project_id = $2 AND name = 'job') AS c`,
      [ids, b.id],
    );
    // One task a batch, a second between batches: the pass would take 20 s.
    const slow = await startScheduler('slow', {
      KILN_RETENTION_BATCH: '1',
      KILN_RETENTION_PAUSE_MS: '1000',
    });
    await waitUntil('the pass under way', async () => (await present(ids)) <= 18, {
      timeoutMs: 20_000,
    });
    const stopping = Date.now();
    await stopApp(slow.child);
    const stopMs = Date.now() - stopping;
    const left = await present(ids);
    expect(stopMs).toBeLessThan(5000);
    expect(left).toBeGreaterThan(0);

    await startScheduler('next');
    await waitUntil('the rest deleted', async () => (await present(ids)) === 0, {
      timeoutMs: 20_000,
    });
  });
});
