import { promisify } from 'node:util';
import { Client } from 'pg';
import {
  call,
  e2e,
  getTask,
  newProject,
  registerCode,
  TestProject,
  waitForTask,
  grantCluster,
  waitUntil,
} from './support/kiln';
import { sleep, startWorker, stopApp } from './support/processes';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const ironWorker = require('iron_worker') as { Client: new (options: object) => any };

const ZERO = '0001-01-01T00:00:00Z';

describe('schedules', () => {
  let project: TestProject;
  let base: string;
  let db: Client;
  const post = (path: string, json?: unknown) =>
    call('POST', `${base}${path}`, { token: project.token, json });
  const get = (path: string) => call('GET', `${base}${path}`, { token: project.token });

  /** The tasks a schedule has fired, oldest instant first. */
  async function firedBy(scheduleId: string): Promise<{ id: string; scheduled_for: Date }[]> {
    const rows = await db.query(
      'SELECT id, scheduled_for FROM tasks WHERE schedule_id = $1 ORDER BY scheduled_for',
      [scheduleId],
    );
    return rows.rows;
  }

  beforeAll(async () => {
    project = await newProject('schedules');
    base = `/2/projects/${project.projectId}`;
    await registerCode(project, 'tick');
    db = new Client({ connectionString: process.env.TEST_DATABASE_URL });
    await db.connect();
  });

  afterAll(async () => {
    await db.end();
  });

  it("creates, lists, gets, updates and cancels with IronWorker's shapes and msg strings", async () => {
    const created = await post('/schedules', {
      schedules: [
        {
          code_name: 'tick',
          payload: '{"s":1}',
          run_every: 3600,
          start_at: '2030-01-01T00:00:00+02:00',
          run_times: 0,
          label: 'nightly',
        },
      ],
    });
    expect(created.status).toBe(200);
    expect(created.body).toEqual({
      msg: 'Scheduled',
      schedules: [{ id: expect.stringMatching(/^[0-9a-f]{24}$/) }],
    });
    const id = created.body.schedules[0].id;
    const schedule = (await get(`/schedules/${id}`)).body;
    expect(schedule).toMatchObject({
      id,
      project_id: project.projectId,
      code_name: 'tick',
      payload: '{"s":1}',
      status: 'scheduled',
      run_every: 3600,
      run_times: 0,
      run_count: 0,
      label: 'nightly',
      start_at: '2029-12-31T22:00:00.000Z',
      next_start: '2029-12-31T22:00:00.000Z',
      last_run_time: ZERO,
      end_at: ZERO,
      msg: '',
    });
    for (const field of ['run_count', 'run_times', 'max_concurrency']) {
      expect(Number.isInteger(schedule[field])).toBe(true);
    }
    expect((await get('/schedules')).body.schedules.map((s: { id: string }) => s.id)).toContain(id);

    const updated = await call('PUT', `${base}/schedules/${id}`, {
      token: project.token,
      json: { run_every: 7200, payload: '{"s":2}' },
    });
    expect(updated.body).toEqual({ msg: 'Updated' });
    expect((await get(`/schedules/${id}`)).body).toMatchObject({
      run_every: 7200,
      payload: '{"s":2}',
      label: 'nightly',
    });

    expect((await post(`/schedules/${id}/cancel`)).body).toEqual({ msg: 'Cancelled' });
    expect((await get(`/schedules/${id}`)).body).toMatchObject({
      status: 'cancelled',
      next_start: ZERO,
    });
  });

  it('refuses bad schedules with 400s naming the field, and creates none of the batch', async () => {
    const before = (await get('/schedules')).body.schedules.length;
    const cases: [unknown, number, RegExp][] = [
      [{ code_name: 'tick', payload: '{}', run_every: 59 }, 400, /run_every must be at least 60/],
      [{ code_name: 'tick', payload: '{}', cron: '61 * * * *' }, 400, /cron is invalid/],
      [{ code_name: 'tick', payload: '{}', cron: '* * *' }, 400, /cron must have 5 fields/],
      [
        { code_name: 'tick', payload: '{}', cron: '*/10 * * * * *' },
        400,
        /cron must have 5 fields .*: a seconds field is not allowed/,
      ],
      [
        { code_name: 'tick', payload: '{}', cron: '0 9 * * *', timezone: 'Mars/Olympus' },
        400,
        /timezone "Mars\/Olympus"/,
      ],
      [
        { code_name: 'tick', payload: '{}', start_at: 'tomorrow' },
        400,
        /start_at must be an RFC3339 time/,
      ],
      [{ code_name: 'tick' }, 400, /payload is required/],
      [{ code_name: 'nope', payload: '{}' }, 404, /Code "nope" not found/],
    ];
    for (const [schedule, status, msg] of cases) {
      const res = await post('/schedules', {
        schedules: [{ code_name: 'tick', payload: '{}', run_every: 60 }, schedule],
      });
      expect(res.status).toBe(status);
      expect(res.body.msg).toMatch(msg);
    }
    expect((await get('/schedules')).body.schedules).toHaveLength(before);
  });

  it('fires a cron schedule in its time zone, `run_times` times, each task carrying schedule_id', async () => {
    const res = await post('/schedules', {
      schedules: [
        {
          code_name: 'tick',
          payload: '{"cron":1}',
          cron: '* * * * *',
          timezone: 'Asia/Kolkata',
          run_times: 3,
        },
      ],
    });
    const id = res.body.schedules[0].id;
    // The API refuses a seconds field now; one stored before that (as here) still fires, every
    // 2 s from the next even second, which keeps this test short.
    await db.query(
      `UPDATE schedules SET cron = '*/2 * * * * *',
              next_start = to_timestamp(ceil(extract(epoch FROM now()) / 2) * 2 + 2)
        WHERE id = $1`,
      [id],
    );
    let schedule: any;
    await waitUntil(
      'the schedule done',
      async () => (schedule = (await get(`/schedules/${id}`)).body).status !== 'scheduled',
      { timeoutMs: 20_000, state: () => JSON.stringify(schedule) },
    );
    expect(schedule).toMatchObject({
      status: 'complete',
      msg: 'Ran max times.',
      run_count: 3,
      next_start: ZERO,
    });
    const fired = await firedBy(id);
    expect(fired).toHaveLength(3);
    const gaps = fired
      .slice(1)
      .map((task, i) => task.scheduled_for.getTime() - fired[i].scheduled_for.getTime());
    expect(gaps).toEqual([2000, 2000]);
    for (const task of fired) {
      const done = await waitForTask(project, task.id);
      expect(done).toMatchObject({ status: 'complete', schedule_id: id, payload: '{"cron":1}' });
    }
  });

  it('does not pile up tasks for a paused code', async () => {
    const codeId = await registerCode(project, 'paused-tick');
    await post(`/codes/${codeId}/pause_task_queue`);
    const res = await post('/schedules', {
      schedules: [{ code_name: 'paused-tick', payload: '{}', run_every: 60 }],
    });
    const id = res.body.schedules[0].id;
    // A fixed window, not a wait for something: the schedule falls due within it and may fire
    // no task.
    await sleep(3500);
    expect(await firedBy(id)).toEqual([]);
    expect((await get(`/schedules/${id}`)).body.msg).toMatch(/paused/);
    await post(`/schedules/${id}/cancel`);
  });

  it("works with the public iron_worker client's schedulesCreate/List/Get/Cancel", async () => {
    const { url } = e2e();
    const parsed = new URL(url);
    const client = new ironWorker.Client({
      token: project.token,
      project_id: project.projectId,
      host: parsed.hostname,
      port: Number(parsed.port),
      protocol: 'http',
      scheme: 'http',
    });
    const create = promisify(client.schedulesCreate.bind(client));
    const list = promisify(client.schedulesList.bind(client));
    const getOne = promisify(client.schedulesGet.bind(client));
    const cancel = promisify(client.schedulesCancel.bind(client));
    const created: any = await create(
      'tick',
      { from: 'client' },
      { run_every: 120, start_at: new Date(Date.now() + 3600_000) },
    );
    const id = created.id ?? created.schedules?.[0]?.id;
    expect(id).toMatch(/^[0-9a-f]{24}$/);
    const listed: any = await list({});
    expect(listed.map((s: { id: string }) => s.id)).toContain(id);
    const one: any = await getOne(id);
    expect(one).toMatchObject({
      id,
      code_name: 'tick',
      payload: '{"from":"client"}',
      run_every: 120,
      status: 'scheduled',
    });
    const cancelled: any = await cancel(id);
    expect(cancelled.msg ?? cancelled).toMatch(/Cancelled/);
    expect((await getOne(id)).status).toBe('cancelled');
  });

  it('re-queues the task of a worker killed mid-run; its restart reaps the orphan container', async () => {
    const cluster = `lapse-${Date.now()}`;
    await grantCluster(project, cluster);
    const workerEnv = {
      ...e2e().env,
      KILN_WORKER_ID: `${cluster}-w`,
      KILN_WORKER_CLUSTER: cluster,
      KILN_WORKER_HEARTBEAT_SECONDS: '1',
    };
    const first = await startWorker(workerEnv, `${cluster}-1`);
    const queued = await post('/tasks', {
      tasks: [{ code_name: 'tick', payload: '{"sleep":4}', cluster }],
    });
    const id = queued.body.tasks[0].id;
    await waitForTask(project, id, (t) => t.status === 'running');
    first.kill('SIGKILL');
    // The scheduler notices the lapsed heartbeat (6 s in these tests) and puts the task back.
    const requeued = await waitForTask(project, id, (t) => t.status === 'queued', 30_000);
    expect(requeued.start_time).toBe(ZERO);
    const second = await startWorker(workerEnv, `${cluster}-2`);
    try {
      const done = await waitForTask(project, id);
      expect(done).toMatchObject({ status: 'complete', run_times: 2 });
    } finally {
      await stopApp(second);
    }
    expect((await getTask(project, id)).status).toBe('complete');
  });
});
