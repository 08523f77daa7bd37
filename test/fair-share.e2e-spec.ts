import {
  call,
  e2e,
  getTask,
  newProject,
  queueTask,
  registerCode,
  TestProject,
  waitForTask,
  waitUntil,
} from './support/kiln';

/**
 * Two projects on one stack share the worker (4 slots): one project's backlog does not hold the
 * other's tasks (queues per project, served in turn), and an operator's `max_running` holds a
 * project to that many tasks at once.
 */
describe('fair sharing between projects', () => {
  let a: TestProject;
  let b: TestProject;
  let sleeperOfA: string;
  const admin = () => e2e().adminToken;

  beforeAll(async () => {
    a = await newProject('fair-a');
    b = await newProject('fair-b');
    sleeperOfA = await registerCode(a, 'sleeper', { command: 'sleep 1' });
    await registerCode(b, 'quick');
  });

  afterAll(async () => {
    await call('POST', `/2/projects/${a.projectId}/codes/${sleeperOfA}/cancel_all`, {
      token: a.token,
    });
  });

  async function queueMany(project: TestProject, count: number, task: Record<string, unknown>) {
    const res = await call('POST', `/2/projects/${project.projectId}/tasks`, {
      token: project.token,
      json: { tasks: Array.from({ length: count }, () => task) },
    });
    expect(res.status).toBe(200);
    return (res.body.tasks as { id: string }[]).map((task) => task.id);
  }

  async function startedOf(project: TestProject, ids: string[]): Promise<number[]> {
    const tasks = await Promise.all(ids.map((id) => getTask(project, id)));
    return tasks
      .map((task) => Date.parse(task.start_time))
      .filter((time) => time > 0)
      .sort((x, y) => x - y);
  }

  it("a backlog of A's urgent tasks does not hold B's one task at the lowest priority", async () => {
    const backlog = await queueMany(a, 60, { code_name: 'sleeper', payload: '{}', priority: 2 });
    // A's backlog fills the worker first.
    await waitUntil(
      "A's tasks running",
      async () => (await startedOf(a, backlog.slice(0, 8))).length >= 4,
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    const mine = await queueTask(b, { code_name: 'quick', payload: '{}', priority: 0 });
    const done = await waitForTask(b, mine);
    expect(done.status).toBe('complete');
    const bStarted = Date.parse(done.start_time);
    // B's task started in the next round of slots: most of A's 60 had not started yet.
    const aBefore = (await startedOf(a, backlog)).filter((time) => time < bStarted);
    expect(aBefore.length).toBeLessThanOrEqual(12);
    const stillQueued = await call(
      'GET',
      `/2/projects/${a.projectId}/tasks?queued=1&per_page=100`,
      {
        token: a.token,
      },
    );
    expect(stillQueued.body.tasks.length).toBeGreaterThanOrEqual(30);
    await call('POST', `/2/projects/${a.projectId}/codes/${sleeperOfA}/cancel_all`, {
      token: a.token,
    });
  });

  it('max_running holds a project to that many running tasks; another project is not held', async () => {
    const set = await call('PATCH', `/2/projects/${a.projectId}`, {
      token: admin(),
      json: { max_running: 1 },
    });
    expect(set.status).toBe(200);
    expect(set.body.project.max_running).toBe(1);
    try {
      const ids = await queueMany(a, 3, { code_name: 'sleeper', payload: '{}' });
      const theirs = await queueMany(b, 2, { code_name: 'quick', payload: '{}' });
      const tasks = await Promise.all(ids.map((id) => waitForTask(a, id)));
      expect(tasks.map((task) => task.status)).toEqual(['complete', 'complete', 'complete']);
      // One at a time: each started after the one before it ended.
      const spans = tasks
        .map((task) => [Date.parse(task.start_time), Date.parse(task.end_time)])
        .sort((x, y) => x[0] - y[0]);
      for (let i = 1; i < spans.length; i++) {
        expect(spans[i][0]).toBeGreaterThanOrEqual(spans[i - 1][1] - 50);
      }
      for (const id of theirs) expect((await waitForTask(b, id)).status).toBe('complete');
    } finally {
      await call('PATCH', `/2/projects/${a.projectId}`, {
        token: admin(),
        json: { max_running: null },
      });
    }
    const cleared = await call('GET', `/2/projects/${a.projectId}`, { token: a.token });
    expect(cleared.body.max_running).toBeNull();
  });

  it('max_running is the operator’s: a project token gets 403, bad values 400, nothing changes', async () => {
    const path = `/2/projects/${a.projectId}`;
    const own = await call('PATCH', path, { token: a.token, json: { max_running: 100 } });
    expect(own.status).toBe(403);
    expect(own.body.msg).toMatch(/admin/);
    for (const [body, message] of [
      [{ max_running: -1 }, /max_running/],
      [{ max_running: 'x' }, /max_running/],
      [{ max_running: 1e9 }, /max_running/],
      [{}, /max_running or retention_days is required/],
    ] as const) {
      const res = await call('PATCH', path, { token: admin(), json: body });
      expect(res.status).toBe(400);
      expect(res.body.msg).toMatch(message);
    }
    const unknown = await call('PATCH', '/2/projects/000000000000000000000000', {
      token: admin(),
      json: { max_running: 1 },
    });
    expect(unknown.status).toBe(404);
    expect((await call('GET', path, { token: a.token })).body.max_running).toBeNull();
  });
});
