import Docker from 'dockerode';
import {
  call,
  expectStderrInterleaved,
  getTask,
  grantCluster,
  newProject,
  queueTask,
  registerCode,
  taskLog,
  TestProject,
  waitForTask,
  waitUntil,
} from './support/kiln';
import { sleep } from './support/processes';

const ZERO = '0001-01-01T00:00:00Z';
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/;

describe('the task API', () => {
  let project: TestProject;
  let base: string;
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET });
  const post = (path: string, json?: unknown) =>
    call('POST', `${base}${path}`, { token: project.token, json });
  const get = (path: string) => call('GET', `${base}${path}`, { token: project.token });

  beforeAll(async () => {
    project = await newProject('task-api');
    base = `/2/projects/${project.projectId}`;
    await registerCode(project, 'api');
  });

  it('emits every field with the types IronWorker clients decode', async () => {
    // A short delay keeps it `queued` long enough to be read as such.
    const id = await queueTask(project, {
      code_name: 'api',
      payload: '{}',
      label: 'l1',
      priority: 1,
      timeout: 30,
      delay: 2,
    });
    const queued = await getTask(project, id);
    expect(queued).toMatchObject({
      id,
      project_id: project.projectId,
      code_name: 'api',
      code_rev: '1',
      status: 'queued',
      priority: 1,
      timeout: 30,
      label: 'l1',
      cluster: 'default',
      start_time: ZERO,
      end_time: ZERO,
      duration: 0,
      delay: 2,
      percent: 0,
      msg: '',
      payload: '{}',
    });
    expect(queued.code_id).toMatch(/^[0-9a-f]{24}$/);
    expect(queued.code_history_id).toMatch(/^[0-9a-f]{24}$/);
    expect(queued.created_at).toMatch(RFC3339);
    const done = await waitForTask(project, id);
    for (const field of ['created_at', 'updated_at', 'start_time', 'end_time']) {
      expect(done[field]).toMatch(RFC3339);
    }
    for (const field of [
      'duration',
      'timeout',
      'run_times',
      'percent',
      'priority',
      'log_size',
      'retry_count',
    ]) {
      expect(Number.isInteger(done[field])).toBe(true);
    }
    expect(typeof done.code_rev).toBe('string');
    expect(done.run_times).toBe(1);
    expect(done.msg).toBe('');
  });

  it('stores each task of a mixed bulk create as asked: codes, priorities, delays, clusters, labels', async () => {
    const mixed = await newProject('mixed');
    const codeA = await registerCode(mixed, 'a', { default_priority: 2 });
    const codeB = await registerCode(mixed, 'b');
    await grantCluster(mixed, 'gpu');
    const res = await call('POST', `/2/projects/${mixed.projectId}/tasks`, {
      token: mixed.token,
      json: {
        tasks: [
          { code_name: 'b', payload: '{"n":1}', priority: 1, timeout: 30, delay: 3600 },
          { code_name: 'a', payload: 'two', delay: 600, cluster: 'gpu', label: 'l2' },
          { code_name: 'a', payload: '', priority: 0, delay: 7200, label: 'l3' },
        ],
      },
    });
    expect(res.status).toBe(200);
    const [one, two, three] = await Promise.all(
      res.body.tasks.map(({ id }: { id: string }) => getTask(mixed, id)),
    );
    const common = { status: 'queued', code_rev: '1', project_id: mixed.projectId };
    expect(one).toMatchObject({
      ...common,
      code_id: codeB,
      code_name: 'b',
      payload: '{"n":1}',
      priority: 1,
      timeout: 30,
      delay: 3600,
      cluster: 'default',
      label: '',
    });
    expect(two).toMatchObject({
      ...common,
      code_id: codeA,
      code_name: 'a',
      payload: 'two',
      priority: 2,
      timeout: 3600,
      delay: 600,
      cluster: 'gpu',
      label: 'l2',
    });
    expect(three).toMatchObject({
      ...common,
      code_id: codeA,
      priority: 0,
      delay: 7200,
      label: 'l3',
    });
    expect(three.payload).toBe('');
    for (const task of [one, two, three]) expect(task.created_at).toBe(one.created_at);
    const cancelled = await call(
      'POST',
      `/2/projects/${mixed.projectId}/codes/${codeA}/cancel_all`,
      {
        token: mixed.token,
      },
    );
    expect(cancelled.status).toBe(200);
  });

  it('cancels a queued and a delayed task: they never run', async () => {
    await registerCode(project, 'paused-for-cancel');
    const codes = await get('/codes');
    const codeId = codes.body.codes.find(
      (c: { name: string }) => c.name === 'paused-for-cancel',
    ).id;
    expect((await post(`/codes/${codeId}/pause_task_queue`)).body.msg).toBe('Paused');
    const queued = await queueTask(project, { code_name: 'paused-for-cancel', payload: '{}' });
    const delayed = await queueTask(project, { code_name: 'api', payload: '{}', delay: 3 });
    for (const id of [queued, delayed]) {
      const res = await post(`/tasks/${id}/cancel`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ msg: 'Cancelled' });
    }
    // A fixed window, not a wait for something: the delayed task falls due within it, and
    // neither may start.
    await sleep(4500);
    for (const id of [queued, delayed]) {
      const task = await getTask(project, id);
      expect(task.status).toBe('cancelled');
      expect(task.start_time).toBe(ZERO);
    }
  });

  it('cancels a running task: its container is killed and it ends `cancelled`', async () => {
    const id = await queueTask(project, { code_name: 'api', payload: '{"sleep":60}' });
    await waitForTask(project, id, (t) => t.status === 'running');
    const started = Date.now();
    expect((await post(`/tasks/${id}/cancel`)).body).toEqual({ msg: 'Cancelled' });
    expect((await getTask(project, id)).status).toBe('cancelled');
    // Gone within 15 s of the cancel.
    await waitUntil(
      'its container gone',
      async () =>
        (await docker.listContainers({ all: true, filters: { label: [`kiln.task=${id}`] } }))
          .length === 0,
      { timeoutMs: started + 15_000 - Date.now(), intervalMs: 200 },
    );
    const task = await waitForTask(project, id, (t) => t.duration > 0);
    expect(task.status).toBe('cancelled');
    expect(task.duration).toBeLessThan(15_000);
  });

  it('cancelling a finished task answers 200 and changes nothing', async () => {
    const id = await queueTask(project, { code_name: 'api', payload: '{}' });
    const done = await waitForTask(project, id);
    const res = await post(`/tasks/${id}/cancel`);
    expect(res.status).toBe(200);
    expect(await getTask(project, id)).toEqual(done);
  });

  it('sets progress', async () => {
    const id = await queueTask(project, { code_name: 'api', payload: '{"sleep":3}' });
    await waitForTask(project, id, (t) => t.status === 'running');
    const res = await post(`/tasks/${id}/progress`, { percent: 42, msg: 'half way' });
    expect(res.body).toEqual({ msg: 'Progress set' });
    expect(await getTask(project, id)).toMatchObject({ percent: 42, msg: 'half way' });
    const bad = await post(`/tasks/${id}/progress`, { percent: 101 });
    expect(bad.status).toBe(400);
    expect(bad.body.msg).toMatch(/percent must be at most 100/);
    const done = await waitForTask(project, id);
    expect(done).toMatchObject({ status: 'complete', msg: '', percent: 42 });
  });

  it('retries a task as a new task linked by original_task_id, even one still queued', async () => {
    const id = await queueTask(project, { code_name: 'api', payload: '{"exit":2}' });
    await waitForTask(project, id);
    const res = await post(`/tasks/${id}/retry`, { delay: 0 });
    expect(res.status).toBe(200);
    expect(res.body.msg).toBe('Queued up');
    const retryId = res.body.tasks[0].id;
    expect(retryId).not.toBe(id);
    const retry = await waitForTask(project, retryId);
    expect(retry).toMatchObject({
      status: 'error',
      original_task_id: id,
      retry_count: 1,
      payload: '{"exit":2}',
    });
    expect((await getTask(project, id)).retry_task_id).toBe(retryId);
    const stillQueued = await queueTask(project, { code_name: 'api', payload: '{}', delay: 3600 });
    expect((await post(`/tasks/${stillQueued}/retry`)).status).toBe(200);
    const missing = await post(`/tasks/${'a'.repeat(24)}/retry`);
    expect(missing.status).toBe(404);
    expect(missing.body.msg).toMatch(/not found/i);
  });

  it('turns any raw webhook body into a payload and answers "Queued up."', async () => {
    const body = 'a=1&b=two\nnot json at all';
    const res = await call(
      'POST',
      `${base}/tasks/webhook?code_name=api&oauth=${project.token}&label=hook`,
      {
        auth: 'none',
        body,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      },
    );
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ id: expect.stringMatching(/^[0-9a-f]{24}$/), msg: 'Queued up.' });
    const task = await waitForTask(project, res.body.id);
    expect(task).toMatchObject({ status: 'complete', payload: body, label: 'hook' });
    expect((await taskLog(project, res.body.id)).text).toBe(`${body}\n`);
    const noCode = await call('POST', `${base}/tasks/webhook?oauth=${project.token}`, {
      auth: 'none',
      body: 'x',
    });
    expect(noCode.status).toBe(400);
    expect(noCode.body.msg).toMatch(/code_name is required/);
  });

  it('the log grows while the task runs', async () => {
    const id = await queueTask(project, { code_name: 'api', payload: '{"lines":4,"interval":1}' });
    await waitForTask(project, id, (t) => t.status === 'running');
    let partial = '';
    await waitUntil(
      'line 2 in the log',
      async () => (partial = (await taskLog(project, id)).text).includes('line 2'),
      { timeoutMs: 4000, state: () => `log: ${JSON.stringify(partial)}` },
    );
    expect(partial).toContain('line 2');
    expect(partial).not.toContain('line 4');
    expect((await getTask(project, id)).status).toBe('running');
    await waitForTask(project, id);
    expect((await taskLog(project, id)).text).toContain('line 4');
  });

  it('serves STDOUT alone as outlog once the task ended', async () => {
    const id = await queueTask(project, { code_name: 'api', payload: '{"stderr":"to stderr"}' });
    const early = await get(`/tasks/${id}/outlog`);
    if (early.status !== 200) expect(early.status).toBe(404);
    await waitForTask(project, id);
    const out = await get(`/tasks/${id}/outlog`);
    expect(out.status).toBe(200);
    expect(out.text).toBe('{"stderr":"to stderr"}\n');
    const log = (await taskLog(project, id)).text;
    expectStderrInterleaved(log, '{"stderr":"to stderr"}\n', 'to stderr\n');
  });

  it('lists with status flags, code_name, label, cluster, time range and paging; newest first', async () => {
    const lister = await newProject('lister');
    await registerCode(lister, 'a');
    await grantCluster(lister, 'elsewhere');
    await registerCode(lister, 'b');
    const ok = await queueTask(lister, { code_name: 'a', payload: '{}', label: 'x' });
    const failed = await queueTask(lister, { code_name: 'b', payload: '{"exit":1}' });
    const waiting = await queueTask(lister, {
      code_name: 'a',
      payload: '{}',
      delay: 3600,
      cluster: 'elsewhere',
    });
    await waitForTask(lister, ok);
    await waitForTask(lister, failed);
    const list = async (query: string) => {
      const res = await call('GET', `/2/projects/${lister.projectId}/tasks?${query}`, {
        token: lister.token,
      });
      expect(res.status).toBe(200);
      return res.body.tasks.map((t: { id: string }) => t.id);
    };
    expect(await list('')).toEqual([waiting, failed, ok]);
    expect(await list('complete=1')).toEqual([ok]);
    expect(await list('complete=1&error=1')).toEqual([failed, ok]);
    expect(await list('queued=%21d%28bool%3Dtrue%29')).toEqual([waiting]);
    expect(await list('code_name=a')).toEqual([waiting, ok]);
    expect(await list('label=x')).toEqual([ok]);
    expect(await list('cluster=elsewhere')).toEqual([waiting]);
    expect(await list('per_page=1&page=1')).toEqual([failed]);
    const now = Math.floor(Date.now() / 1000);
    expect(await list(`from_time=${now + 60}`)).toEqual([]);
    expect(await list(`to_time=${now + 60}&from_time=${now - 600}`)).toHaveLength(3);
    for (const [query, msg] of [
      ['per_page=101', /per_page/],
      ['finished=1', /unknown task filter "finished"/],
      ['from_time=yesterday', /from_time/],
    ] as const) {
      const res = await call('GET', `/2/projects/${lister.projectId}/tasks?${query}`, {
        token: lister.token,
      });
      expect(res.status).toBe(400);
      expect(res.body.msg).toMatch(msg);
    }
  });
});
