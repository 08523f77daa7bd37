import Docker from 'dockerode';
import {
  call,
  getTask,
  newProject,
  queueTask,
  registerCode,
  taskLog,
  TestProject,
  waitForTask,
} from './support/kiln';

/** Issue 2's heart: register an image, queue a task, a worker runs it and keeps its output. */
describe('running a task end to end', () => {
  let project: TestProject;
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET });

  beforeAll(async () => {
    project = await newProject('run-task');
    await registerCode(project, 'hello', {
      env_vars: { GREETING: 'hi there', TASK_ID: 'overridden?' },
      config: '{"answer":42}',
    });
  });

  it('register → queue → complete, with the payload in the log', async () => {
    const id = await queueTask(project, { code_name: 'hello', payload: '{"hello":"world"}' });
    expect(id).toMatch(/^[0-9a-f]{24}$/);
    const task = await waitForTask(project, id);
    expect(task).toMatchObject({
      status: 'complete',
      msg: '',
      code_name: 'hello',
      code_rev: '1',
      payload: '{"hello":"world"}',
    });
    expect(typeof task.duration).toBe('number');
    expect(task.duration).toBeGreaterThanOrEqual(0);
    expect(task.start_time).not.toBe('0001-01-01T00:00:00Z');
    expect(Date.parse(task.end_time)).toBeGreaterThanOrEqual(Date.parse(task.start_time));
    const log = await taskLog(project, id);
    expect(log.status).toBe(200);
    expect(log.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(log.text).toBe('{"hello":"world"}\n');
  });

  it('a non-zero exit ends the task `error` with the exit code in msg', async () => {
    const id = await queueTask(project, {
      code_name: 'hello',
      payload: '{"exit":3,"stderr":"boom"}',
    });
    const task = await waitForTask(project, id);
    expect(task.status).toBe('error');
    expect(task.msg).toBe('exit code 3');
    // STDOUT and STDERR reach Docker through two pipes read independently, so two lines written
    // microseconds apart on different streams may arrive either way round: compare the lines.
    const lines = (await taskLog(project, id)).text.split('\n');
    expect(lines.sort()).toEqual(['', '{"exit":3,"stderr":"boom"}', 'boom'].sort());
  });

  it('a task past its timeout is killed: `timeout` within 2 s ± 2 s, its container gone', async () => {
    const id = await queueTask(project, {
      code_name: 'hello',
      payload: '{"sleep":60}',
      timeout: 2,
    });
    const running = await waitForTask(
      project,
      id,
      (t) => t.status === 'running' || (t.status !== 'queued' && t.status !== 'preparing'),
    );
    expect(running.status).toBe('running');
    const task = await waitForTask(project, id);
    expect(task.status).toBe('timeout');
    expect(task.duration).toBeGreaterThanOrEqual(0);
    expect(task.duration).toBeLessThanOrEqual(4000);
    // The container is removed right after the outcome is recorded.
    const containers = () =>
      docker.listContainers({ all: true, filters: { label: [`kiln.task=${id}`] } });
    let left = await containers();
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      left = await containers();
    }
    expect(left).toEqual([]);
  });

  it('env vars, CONFIG_FILE, TASK_ID, TASK_DIR and the payload on STDIN reach the container', async () => {
    const ids = await Promise.all(
      ['GREETING', 'TASK_ID', 'TASK_DIR', 'PAYLOAD_FILE'].map((name) =>
        queueTask(project, { code_name: 'hello', payload: `{"env":"${name}"}` }),
      ),
    );
    const logs = await Promise.all(
      ids.map(async (id) => {
        await waitForTask(project, id);
        return (await taskLog(project, id)).text;
      }),
    );
    expect(logs[0]).toContain('GREETING=hi there');
    expect(logs[1]).toContain(`TASK_ID=${ids[1]}`);
    expect(logs[2]).toContain('TASK_DIR=/mnt/task');
    expect(logs[3]).toContain('PAYLOAD_FILE=/mnt/kiln/payload.json');

    const configId = await queueTask(project, {
      code_name: 'hello',
      payload: '{"config":true,"stdin":true}',
    });
    await waitForTask(project, configId);
    const log = (await taskLog(project, configId)).text;
    expect(log).toContain('config: {"answer":42}');
    expect(log).toContain('stdin: {"config":true,"stdin":true}');
  });

  it('runs hardened: unprivileged user, no capabilities, limits, no host mounts, network from config', async () => {
    const id = await queueTask(project, { code_name: 'hello', payload: '{"id":true,"sleep":5}' });
    await waitForTask(project, id, (t) => t.status === 'running');
    const [container] = await docker.listContainers({
      all: true,
      filters: { label: [`kiln.task=${id}`] },
    });
    expect(container).toBeDefined();
    const info = await docker.getContainer(container.Id).inspect();
    expect(info.Config.Labels).toMatchObject({ 'kiln.task': id, 'kiln.attempt': '1' });
    expect(info.Config.Labels['kiln.worker']).toMatch(/^e2e-/);
    expect(info.Config.User).toBe('65534:65534');
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect(info.HostConfig.SecurityOpt).toEqual(['no-new-privileges']);
    expect(info.HostConfig.Privileged).toBe(false);
    expect(info.HostConfig.PidsLimit).toBe(256);
    expect(info.HostConfig.Memory).toBe(512 * 1024 * 1024);
    expect(info.HostConfig.NetworkMode).toBe('none');
    expect(info.HostConfig.LogConfig).toMatchObject({ Type: 'none' });
    expect(info.HostConfig.Binds ?? []).toEqual([]);
    expect(info.Mounts).toEqual([]);
    const task = await waitForTask(project, id);
    expect(task.status).toBe('complete');
    expect((await taskLog(project, id)).text).toContain('id: uid=65534');
  });

  it('the log is 404 with "log" in msg before the task starts', async () => {
    await registerCode(project, 'delayed');
    const id = await queueTask(project, { code_name: 'delayed', payload: '{}', delay: 3600 });
    const log = await taskLog(project, id);
    expect(log.status).toBe(404);
    expect(JSON.parse(log.text).msg).toMatch(/log/i);
    expect((await getTask(project, id)).status).toBe('queued');
  });

  it('the code revision is fixed when the task is queued', async () => {
    await registerCode(project, 'revisions', { env_vars: { WHICH: 'first' } });
    const first = await queueTask(project, {
      code_name: 'revisions',
      payload: '{"env":"WHICH","sleep":1}',
    });
    await registerCode(project, 'revisions', { env_vars: { WHICH: 'second' } });
    const second = await queueTask(project, { code_name: 'revisions', payload: '{"env":"WHICH"}' });
    const [a, b] = [await waitForTask(project, first), await waitForTask(project, second)];
    expect([a.code_rev, b.code_rev]).toEqual(['1', '2']);
    expect((await taskLog(project, first)).text).toContain('WHICH=first');
    expect((await taskLog(project, second)).text).toContain('WHICH=second');
  });

  it('takes a bulk of tasks and lists them newest first', async () => {
    await registerCode(project, 'bulk');
    const res = await call('POST', `/2/projects/${project.projectId}/tasks`, {
      token: project.token,
      json: {
        tasks: Array.from({ length: 5 }, (_, i) => ({ code_name: 'bulk', payload: `{"n":${i}}` })),
      },
    });
    expect(res.status).toBe(200);
    expect(res.body.msg).toBe('Queued up');
    const ids = res.body.tasks.map((t: { id: string }) => t.id);
    expect(ids).toHaveLength(5);
    for (const id of ids) expect((await waitForTask(project, id)).status).toBe('complete');
    const list = await call('GET', `/2/projects/${project.projectId}/tasks?code_name=bulk`, {
      token: project.token,
    });
    expect(list.body.tasks.map((t: { id: string }) => t.id)).toEqual([...ids].reverse());
  });
});
