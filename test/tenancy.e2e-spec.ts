import { waitUntil } from './support/kiln';
import { OwnStack, StackAnswer } from './support/own-stack';

/**
 * Tenants cannot touch each other (issue 13): clusters other than `default` are granted by the
 * operator, and each project's quotas hold, each refusal writing nothing. A stack of its own (an
 * API alone: no worker takes the tasks, so they stay queued) with small quotas, so that reaching
 * each one is quick.
 */
describe('tenancy: cluster grants and quotas', () => {
  const QUOTAS = {
    KILN_QUOTA_QUEUED_TASKS: '5',
    KILN_QUOTA_SCHEDULES: '3',
    KILN_QUOTA_WEBHOOKS: '2',
    KILN_QUOTA_LOG_DRAINS: '2',
    KILN_QUOTA_TRIGGERS_PER_CODE: '2',
    KILN_QUOTA_LOG_FOLLOWERS: '2',
    KILN_QUOTA_INVOKES: '2',
  };
  const stack = new OwnStack('tenancy', 40);
  type Project = { id: string; token: string };
  let a: Project;
  let b: Project;

  /** A project's call, with its own token. */
  const as = (project: Project, method: string, path: string, json?: unknown) =>
    stack.request(method, `/2/projects/${project.id}${path}`, json, project.token);
  const admin = (method: string, path: string, json?: unknown) => stack.request(method, path, json);

  /** A project with code `job` (and `other`). */
  async function project(name: string): Promise<Project> {
    const made = await stack.newProject(name);
    for (const code of ['job', 'other']) {
      const res = await as(made, 'POST', '/codes', {
        name: code,
        image: 'kiln-test/busybox:latest',
      });
      expect(res.status).toBe(200);
    }
    return made;
  }

  const tasksOf = async (p: Project, query = '') =>
    (await as(p, 'GET', `/tasks?per_page=100${query}`)).body.tasks as {
      id: string;
      cluster: string;
    }[];
  const schedulesOf = async (p: Project) =>
    (await as(p, 'GET', '/schedules')).body.schedules as { id: string; cluster: string }[];
  const codeId = async (p: Project, name: string): Promise<string> =>
    ((await as(p, 'GET', '/codes')).body.codes as { id: string; name: string }[]).find(
      (code) => code.name === name,
    )!.id;
  const queue = (p: Project, count: number, extra: Record<string, unknown> = {}) =>
    as(p, 'POST', '/tasks', {
      tasks: Array.from({ length: count }, () => ({ code_name: 'job', payload: '{}', ...extra })),
    });

  function expectRefused(res: StackAnswer, status: number, msg: RegExp): void {
    expect({ status: res.status, msg: res.body?.msg }).toEqual({
      status,
      msg: expect.stringMatching(msg),
    });
  }

  beforeAll(async () => {
    await stack.create(QUOTAS);
    await stack.startApi();
    a = await project('tenant-a');
    b = await project('tenant-b');
    const granted = await admin('PUT', `/2/projects/${a.id}/clusters/trusted`);
    expect(granted).toEqual({ status: 200, body: { msg: 'Granted', cluster: 'trusted' } });
  });

  afterAll(async () => {
    await stack.close();
  });

  describe('clusters are granted', () => {
    it('lists grants to the project and the admin; only the admin grants and revokes', async () => {
      expect(await as(a, 'GET', '/clusters')).toEqual({
        status: 200,
        body: { clusters: [{ name: 'trusted', granted_at: expect.stringMatching(/Z$/) }] },
      });
      expect((await as(b, 'GET', '/clusters')).body).toEqual({ clusters: [] });
      expect((await admin('GET', `/2/projects/${b.id}/clusters`)).body).toEqual({ clusters: [] });
      expectRefused(await as(a, 'PUT', '/clusters/mine'), 403, /needs the admin token/);
      expectRefused(await as(a, 'DELETE', '/clusters/trusted'), 403, /needs the admin token/);
      expectRefused(
        await stack.request('GET', `/2/projects/${a.id}/clusters`, undefined, b.token),
        401,
        /does not grant access/,
      );
      expectRefused(
        await admin('PUT', `/2/projects/${a.id}/clusters/bad%20name`),
        400,
        /cluster must be 1-63 letters/,
      );
      expectRefused(
        await admin('PUT', `/2/projects/${a.id}/clusters/default`),
        400,
        /needs no grant/,
      );
      expectRefused(
        await admin('DELETE', `/2/projects/${b.id}/clusters/trusted`),
        404,
        /not granted/,
      );
      expectRefused(
        await admin('PUT', `/2/projects/${'0'.repeat(24)}/clusters/x`),
        404,
        /Project not found/,
      );
      // Granting again changes nothing.
      expect((await admin('PUT', `/2/projects/${a.id}/clusters/trusted`)).status).toBe(200);
      expect((await as(a, 'GET', '/clusters')).body.clusters).toHaveLength(1);
    });

    it('tasks: A queues to its granted cluster, B gets a 403 and nothing is written, bulk included', async () => {
      const queued = await queue(a, 1, { cluster: 'trusted', delay: 3600 });
      expect(queued.status).toBe(200);
      expect((await tasksOf(a, '&cluster=trusted')).map((task) => task.id)).toEqual([
        queued.body.tasks[0].id,
      ]);

      expectRefused(
        await queue(b, 1, { cluster: 'trusted' }),
        403,
        /cluster "trusted" is not granted to this project/,
      );
      const bulk = await as(b, 'POST', '/tasks', {
        tasks: [
          { code_name: 'job', payload: '{}' },
          { code_name: 'job', payload: '{}', cluster: 'trusted' },
        ],
      });
      expectRefused(bulk, 403, /cluster "trusted" is not granted/);
      const hook = await as(b, 'POST', '/tasks/webhook?code_name=job&cluster=trusted', {});
      expectRefused(hook, 403, /cluster "trusted" is not granted/);
      expectRefused(
        await queue(b, 1, { cluster: 'no/slash' }),
        400,
        /tasks\[0\]\.cluster must be 1-63/,
      );
      expect(await tasksOf(b)).toEqual([]);
    });

    it('schedules: create and update to an ungranted cluster are 403s and change nothing', async () => {
      const schedule = {
        code_name: 'job',
        payload: '{}',
        run_every: 3600,
        start_at: '2030-01-01T00:00:00Z',
      };
      expect(
        (await as(a, 'POST', '/schedules', { schedules: [{ ...schedule, cluster: 'trusted' }] }))
          .status,
      ).toBe(200);
      expect((await schedulesOf(a)).map((s) => s.cluster)).toEqual(['trusted']);

      const refused = await as(b, 'POST', '/schedules', {
        schedules: [schedule, { ...schedule, cluster: 'trusted' }],
      });
      expectRefused(refused, 403, /cluster "trusted" is not granted/);
      expect(await schedulesOf(b)).toEqual([]);

      const made = await as(b, 'POST', '/schedules', { schedules: [schedule] });
      const id = made.body.schedules[0].id;
      expectRefused(
        await as(b, 'PUT', `/schedules/${id}`, { cluster: 'trusted' }),
        403,
        /cluster "trusted" is not granted/,
      );
      expectRefused(
        await as(b, 'PUT', `/schedules/${id}`, { cluster: '.dot' }),
        400,
        /cluster must be 1-63/,
      );
      expect((await as(b, 'GET', `/schedules/${id}`)).body.cluster).toBe('default');
      await as(b, 'POST', `/schedules/${id}/cancel`);
    });

    it('trigger URLs: B cannot make one for the cluster; the one A made queues there', async () => {
      const bCode = await codeId(b, 'job');
      expectRefused(
        await as(b, 'POST', `/codes/${bCode}/triggers`, { cluster: 'trusted' }),
        403,
        /cluster "trusted" is not granted/,
      );
      expect((await as(b, 'GET', `/codes/${bCode}/triggers`)).body).toEqual({ triggers: [] });

      const aCode = await codeId(a, 'job');
      const trigger = await as(a, 'POST', `/codes/${aCode}/triggers`, { cluster: 'trusted' });
      expect(trigger.status).toBe(200);
      expect(trigger.body.cluster).toBe('trusted');
      const fired = await fetch(trigger.body.url, { method: 'POST', body: '{"via":"trigger"}' });
      expect(fired.status).toBe(200);
      const { id } = (await fired.json()) as { id: string };
      expect((await as(a, 'GET', `/tasks/${id}`)).body).toMatchObject({ cluster: 'trusted' });
      await as(a, 'POST', `/tasks/${id}/cancel`);
      await as(a, 'DELETE', `/codes/${aCode}/triggers/${trigger.body.id}`);
    });

    it('a revoke stops A at once: tasks, schedule changes, trigger URLs and retries', async () => {
      const aCode = await codeId(a, 'job');
      const trigger = (await as(a, 'POST', `/codes/${aCode}/triggers`, { cluster: 'trusted' }))
        .body;
      const [schedule] = await schedulesOf(a);
      const [task] = await tasksOf(a, '&cluster=trusted');
      const before = await tasksOf(a);

      expect(await admin('DELETE', `/2/projects/${a.id}/clusters/trusted`)).toEqual({
        status: 200,
        body: { msg: 'Revoked', cluster: 'trusted' },
      });
      expect((await as(a, 'GET', '/clusters')).body).toEqual({ clusters: [] });
      expectRefused(
        await queue(a, 1, { cluster: 'trusted' }),
        403,
        /cluster "trusted" is not granted/,
      );
      expectRefused(
        await as(a, 'PUT', `/schedules/${schedule.id}`, { payload: '{"x":1}' }),
        403,
        /not granted/,
      );
      const fired = await fetch(trigger.url, { method: 'POST', body: '{}' });
      expect(fired.status).toBe(403);
      expectRefused(await as(a, 'POST', `/tasks/${task.id}/retry`, {}), 403, /not granted/);
      expect(await tasksOf(a)).toEqual(before);
      expect((await as(a, 'GET', `/schedules/${schedule.id}`)).body.payload).toBe('{}');
      expectRefused(
        await admin('DELETE', `/2/projects/${a.id}/clusters/trusted`),
        404,
        /not granted/,
      );
      await as(a, 'POST', `/tasks/${task.id}/cancel`);
      await as(a, 'POST', `/schedules/${schedule.id}/cancel`);
    });
  });

  describe('a grant revoked after a schedule was made', () => {
    it('the scheduler fires nothing into that cluster: each run is skipped with a msg', async () => {
      const c = await project('tenant-c');
      expect((await admin('PUT', `/2/projects/${c.id}/clusters/night`)).status).toBe(200);
      const made = await as(c, 'POST', '/schedules', {
        schedules: [
          {
            code_name: 'job',
            payload: '{}',
            cluster: 'night',
            run_every: 60,
            start_at: new Date(Date.now() + 2000).toISOString(),
          },
        ],
      });
      expect(made.status).toBe(200);
      const id = made.body.schedules[0].id as string;
      expect((await admin('DELETE', `/2/projects/${c.id}/clusters/night`)).status).toBe(200);
      stack.start('scheduler');
      const schedule = async () => (await as(c, 'GET', `/schedules/${id}`)).body;
      await waitUntil('the skipped run', async () => (await schedule()).error_count > 0, {
        timeoutMs: 60_000,
        intervalMs: 200,
        state: async () => JSON.stringify(await schedule()),
      });
      expect(await schedule()).toMatchObject({
        run_count: 0,
        error_count: 1,
        msg: 'Cluster "night" is not granted to this project: a run was skipped',
      });
      expect(await tasksOf(c)).toEqual([]);
      await as(c, 'POST', `/schedules/${id}/cancel`);
    });
  });

  describe('quotas', () => {
    it('queued tasks: a request past the quota is a 429 writing nothing; the other project is not held back', async () => {
      const p = await project('queued-p');
      const q = await project('queued-q');
      expect((await queue(p, 3, { delay: 3600 })).status).toBe(200);
      expectRefused(
        await queue(p, 3, { delay: 3600 }),
        429,
        /^Quota exceeded: queued_tasks is 5 \(at most 5 queued tasks; the project has 3\)$/,
      );
      expect(await tasksOf(p)).toHaveLength(3);
      expect((await queue(p, 2)).status).toBe(200);
      expectRefused(await queue(p, 1), 429, /queued_tasks is 5/);
      expectRefused(
        await as(p, 'POST', '/tasks/webhook?code_name=job', {}),
        429,
        /queued_tasks is 5/,
      );
      const listed = await tasksOf(p);
      expect(listed).toHaveLength(5);
      expectRefused(await as(p, 'POST', `/tasks/${listed[0].id}/retry`, {}), 429, /queued_tasks/);
      expect(await tasksOf(p)).toHaveLength(5);

      expect((await queue(q, 5)).status).toBe(200);
      expect(await tasksOf(q)).toHaveLength(5);

      // A cancelled task leaves room once the count is taken again (within a second or so).
      await as(p, 'POST', `/tasks/${listed[0].id}/cancel`);
      await waitUntil('room after a cancel', async () => (await queue(p, 1)).status === 200, {
        timeoutMs: 5000,
        intervalMs: 200,
      });
      expect((await tasksOf(p, '&queued=1')).length).toBe(5);
    });

    it("the admin sets one project's quota; a malformed value is a 400", async () => {
      const p = await project('override-p');
      expect((await queue(p, 5)).status).toBe(200);
      expectRefused(await queue(p, 1), 429, /queued_tasks is 5/);
      expectRefused(await as(p, 'PUT', '/quotas', { queued_tasks: 100 }), 403, /admin token/);
      for (const bad of [
        { queued_tasks: -1 },
        { queued_tasks: 'many' },
        { queued_tasks: 1.5e10 },
        { tasks: 3 },
      ]) {
        expectRefused(
          await admin('PUT', `/2/projects/${p.id}/quotas`, bad),
          400,
          /queued_tasks|unknown quota "tasks"/,
        );
      }
      const set = await admin('PUT', `/2/projects/${p.id}/quotas`, { queued_tasks: 7 });
      expect(set).toEqual({
        status: 200,
        body: {
          msg: 'Updated',
          quotas: {
            queued_tasks: 7,
            schedules: 3,
            webhooks: 2,
            log_drains: 2,
            triggers_per_code: 2,
            log_followers: 2,
            invokes: 2,
          },
          overrides: { queued_tasks: 7 },
        },
      });
      expect((await as(p, 'GET', '/quotas')).body).toEqual({
        quotas: set.body.quotas,
        overrides: { queued_tasks: 7 },
      });
      expect((await queue(p, 2)).status).toBe(200);
      expectRefused(await queue(p, 1), 429, /queued_tasks is 7/);
      expect(await tasksOf(p)).toHaveLength(7);
      const cleared = await admin('PUT', `/2/projects/${p.id}/quotas`, { queued_tasks: null });
      expect(cleared.body.overrides).toEqual({});
      expect(cleared.body.quotas.queued_tasks).toBe(5);
    });

    it('schedules: live ones count; past the quota a 429 writing nothing', async () => {
      const p = await project('schedules-p');
      const q = await project('schedules-q');
      const schedule = {
        code_name: 'job',
        payload: '{}',
        run_every: 3600,
        start_at: '2030-01-01T00:00:00Z',
      };
      expect((await as(p, 'POST', '/schedules', { schedules: [schedule, schedule] })).status).toBe(
        200,
      );
      expectRefused(
        await as(p, 'POST', '/schedules', { schedules: [schedule, schedule] }),
        429,
        /^Quota exceeded: schedules is 3 \(at most 3 live schedules; the project has 2\)$/,
      );
      expect(await schedulesOf(p)).toHaveLength(2);
      expect((await as(p, 'POST', '/schedules', { schedules: [schedule] })).status).toBe(200);
      expectRefused(
        await as(p, 'POST', '/schedules', { schedules: [schedule] }),
        429,
        /schedules is 3/,
      );
      expect(await schedulesOf(p)).toHaveLength(3);
      expect(
        (await as(q, 'POST', '/schedules', { schedules: [schedule, schedule, schedule] })).status,
      ).toBe(200);
      // A cancelled schedule is no longer live.
      await as(p, 'POST', `/schedules/${(await schedulesOf(p))[0].id}/cancel`);
      expect((await as(p, 'POST', '/schedules', { schedules: [schedule] })).status).toBe(200);
      expect(await schedulesOf(p)).toHaveLength(4);
    });

    it('webhook subscriptions: past the quota a 429 writing nothing', async () => {
      const p = await project('webhooks-p');
      const q = await project('webhooks-q');
      const hook = { url: 'http://127.0.0.1:9/hook' };
      const first = await as(p, 'POST', '/webhooks', hook);
      expect(first.status).toBe(200);
      expect((await as(p, 'POST', '/webhooks', hook)).status).toBe(200);
      expectRefused(
        await as(p, 'POST', '/webhooks', hook),
        429,
        /^Quota exceeded: webhooks is 2 \(at most 2 webhook subscriptions; the project has 2\)$/,
      );
      expect((await as(p, 'GET', '/webhooks')).body.webhooks).toHaveLength(2);
      expect((await as(q, 'POST', '/webhooks', hook)).status).toBe(200);
      await as(p, 'DELETE', `/webhooks/${first.body.id}`);
      expect((await as(p, 'POST', '/webhooks', hook)).status).toBe(200);
      expect((await as(p, 'GET', '/webhooks')).body.webhooks).toHaveLength(2);
    });

    it('trigger URLs: per code, live ones count; past the quota a 429 writing nothing', async () => {
      const p = await project('triggers-p');
      const job = await codeId(p, 'job');
      const first = await as(p, 'POST', `/codes/${job}/triggers`, {});
      expect(first.status).toBe(200);
      expect((await as(p, 'POST', `/codes/${job}/triggers`, {})).status).toBe(200);
      expectRefused(
        await as(p, 'POST', `/codes/${job}/triggers`, {}),
        429,
        /^Quota exceeded: triggers_per_code is 2 \(at most 2 live trigger URLs per code; the project has 2\)$/,
      );
      expect((await as(p, 'GET', `/codes/${job}/triggers`)).body.triggers).toHaveLength(2);
      const other = await codeId(p, 'other');
      expect((await as(p, 'POST', `/codes/${other}/triggers`, {})).status).toBe(200);
      await as(p, 'DELETE', `/codes/${job}/triggers/${first.body.id}`);
      expect((await as(p, 'POST', `/codes/${job}/triggers`, {})).status).toBe(200);
      expect((await as(p, 'GET', `/codes/${job}/triggers`)).body.triggers).toHaveLength(2);
    });

    it('live-log followers: past the quota a 429; a closed stream frees its slot', async () => {
      const p = await project('follow-p');
      const q = await project('follow-q');
      const follow = async (owner: Project, taskId: string, signal: AbortSignal) =>
        fetch(`${stack.url}/2/projects/${owner.id}/tasks/${taskId}/log?follow=1`, {
          headers: { authorization: `OAuth ${owner.token}` },
          signal,
        });
      const pTask = (await queue(p, 1)).body.tasks[0].id as string;
      const qTask = (await queue(q, 1)).body.tasks[0].id as string;
      const streams = [new AbortController(), new AbortController()];
      const closers = [...streams];
      try {
        for (const stream of streams) {
          expect((await follow(p, pTask, stream.signal)).status).toBe(200);
        }
        const third = new AbortController();
        closers.push(third);
        const refused = await follow(p, pTask, third.signal);
        expect(refused.status).toBe(429);
        expect(await refused.json()).toEqual({
          msg: 'Quota exceeded: log_followers is 2 (at most 2 live log followers (?follow=1) per API process; the project has 2)',
        });
        const other = new AbortController();
        closers.push(other);
        expect((await follow(q, qTask, other.signal)).status).toBe(200);

        streams[0].abort();
        await waitUntil(
          'a follower slot freed',
          async () => {
            const next = new AbortController();
            closers.push(next);
            const res = await follow(p, pTask, next.signal);
            if (res.status !== 200) await res.text();
            return res.status === 200;
          },
          { timeoutMs: 5000, intervalMs: 200 },
        );
      } finally {
        for (const closer of closers) closer.abort();
      }
    });
  });

  it('a cron with a seconds field (six fields) is a 400, on create and update, writing nothing', async () => {
    const p = await project('cron-p');
    const refused = await as(p, 'POST', '/schedules', {
      schedules: [{ code_name: 'job', payload: '{}', cron: '*/30 * * * * *' }],
    });
    expectRefused(refused, 400, /cron must have 5 fields .*: a seconds field is not allowed/);
    expect(await schedulesOf(p)).toEqual([]);
    const made = await as(p, 'POST', '/schedules', {
      schedules: [{ code_name: 'job', payload: '{}', cron: '*/5 * * * *' }],
    });
    expect(made.status).toBe(200);
    const id = made.body.schedules[0].id;
    expectRefused(
      await as(p, 'PUT', `/schedules/${id}`, { cron: '0 */5 * * * *' }),
      400,
      /a seconds field is not allowed/,
    );
    expect((await as(p, 'GET', `/schedules/${id}`)).body.cron).toBe('*/5 * * * *');
  });
});
