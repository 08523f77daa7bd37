import Docker from 'dockerode';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  call,
  expectStderrInterleaved,
  getTask,
  newProject,
  queueTask,
  registerCode,
  taskLog,
  TestProject,
  waitForTask,
  waitUntil,
  e2e,
  grantCluster,
} from './support/kiln';
import { startWorker, stopApp } from './support/processes';

/** Issue 2's heart: register an image, queue a task, a worker runs it and keeps its output. */
describe('running a task end to end', () => {
  let project: TestProject;
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET });

  const workers: ChildProcess[] = [];

  /** A worker of its own cluster, so the shared default worker never takes its tasks. */
  async function clusterWorker(cluster: string, extra: Record<string, string> = {}) {
    const id = `${cluster}-w`;
    workers.push(
      await startWorker(
        { ...e2e().env, KILN_WORKER_ID: id, KILN_WORKER_CLUSTER: cluster, ...extra },
        id,
      ),
    );
    return id;
  }

  afterAll(async () => {
    await Promise.all(workers.map((worker) => stopApp(worker)));
  });

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
    const log = (await taskLog(project, id)).text;
    expectStderrInterleaved(log, '{"exit":3,"stderr":"boom"}\n', 'boom\n');
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
    let left: Docker.ContainerInfo[] = [];
    await waitUntil('its container gone', async () => (left = await containers()).length === 0, {
      timeoutMs: 5000,
      state: () => `left: ${JSON.stringify(left)}`,
    });
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

  it('runs hardened: unprivileged user, no capabilities, limits, network from config, and no host mount but its own read-only files', async () => {
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
    // The one host path: this task's own directory of contract files, read-only
    // (KILN_CONTRACT_DELIVERY=bind), plus a tmpfs TASK_DIR.
    const filesDir = join(
      e2e().env.KILN_TASK_FILES_DIR,
      info.Config.Labels['kiln.worker'],
      `${id}.1`,
    );
    expect(info.HostConfig.Binds ?? []).toEqual([]);
    expect(info.HostConfig.VolumesFrom ?? []).toEqual([]);
    expect(info.HostConfig.Mounts).toEqual([
      expect.objectContaining({
        Type: 'bind',
        Source: filesDir,
        Target: '/mnt/kiln',
        ReadOnly: true,
      }),
    ]);
    expect(info.Mounts).toEqual([
      expect.objectContaining({
        Type: 'bind',
        Source: filesDir,
        Destination: '/mnt/kiln',
        RW: false,
      }),
    ]);
    expect(Object.keys(info.HostConfig.Tmpfs ?? {}).sort()).toEqual(['/mnt/task', '/tmp']);
    expect(info.HostConfig.Tmpfs!['/mnt/task'].split(',')).toEqual(
      expect.arrayContaining(['nosuid', 'nodev', 'mode=0700', 'uid=65534', 'gid=65534']),
    );
    expect(info.HostConfig.Tmpfs!['/mnt/task']).toMatch(/(^|,)size=\d+(,|$)/);
    // Issue 14: a read-only root, /tmp a size-capped tmpfs, a CPU limit, nofile, no core dumps.
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    expect(info.HostConfig.Tmpfs!['/tmp'].split(',')).toEqual(
      expect.arrayContaining(['nosuid', 'nodev', 'mode=1777', 'size=67108864']),
    );
    expect(info.HostConfig.NanoCpus).toBe(1e9);
    expect(info.HostConfig.Ulimits).toEqual([
      { Name: 'nofile', Soft: 4096, Hard: 4096 },
      { Name: 'core', Soft: 0, Hard: 0 },
    ]);
    // On the host: only the payload and the config, world-readable, read-only.
    expect(readdirSync(filesDir).sort()).toEqual(['config.json', 'payload.json']);
    expect(statSync(filesDir).mode & 0o777).toBe(0o755);
    expect(statSync(join(filesDir, 'payload.json')).mode & 0o777).toBe(0o444);
    expect(statSync(join(filesDir, 'config.json')).mode & 0o777).toBe(0o444);
    expect(readFileSync(join(filesDir, 'payload.json'), 'utf8')).toBe('{"id":true,"sleep":5}');
    expect(readFileSync(join(filesDir, 'config.json'), 'utf8')).toBe('{"answer":42}');
    const task = await waitForTask(project, id);
    expect(task.status).toBe('complete');
    expect((await taskLog(project, id)).text).toContain('id: uid=65534');
    // The files go with the container.
    await waitUntil(`${filesDir} gone`, () => !existsSync(filesDir), { timeoutMs: 5000 });
    expect(existsSync(filesDir)).toBe(false);
  });

  it('TASK_DIR is the task user’s own writable, executable tmpfs; /mnt/kiln and / are read-only, /tmp writable', async () => {
    // The payload is the script: `sh $PAYLOAD_FILE`.
    await registerCode(project, 'contract-dirs', { command: 'sh /mnt/kiln/payload.json' });
    const script = [
      'pwd',
      'stat -c "owner %u:%g" .',
      'grep " /mnt/task " /proc/mounts | cut -d" " -f3',
      'echo written > note && cat note',
      'cp /bin/busybox ./echo && ./echo exec ok',
      'touch /mnt/kiln/new 2>/dev/null || echo "kiln dir read-only"',
      '{ echo more >> /mnt/kiln/payload.json; } 2>/dev/null || echo "payload read-only"',
      'grep " /mnt/kiln " /proc/mounts | cut -d" " -f4 | cut -d, -f1',
      'ls /mnt/kiln | tr "\n" " "; echo',
      'touch /new 2>/dev/null || echo "root read-only"',
      'echo t > /tmp/t && cat /tmp/t && stat -c "%a" /tmp',
    ].join('\n');
    const id = await queueTask(project, { code_name: 'contract-dirs', payload: script });
    const task = await waitForTask(project, id);
    expect(task.status).toBe('complete');
    expect((await taskLog(project, id)).text).toBe(
      [
        '/mnt/task',
        'owner 65534:65534',
        'tmpfs',
        'written',
        'exec ok',
        'kiln dir read-only',
        'payload read-only',
        'ro',
        'config.json payload.json ',
        'root read-only',
        't',
        '1777',
        '',
      ].join('\n'),
    );
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

  it('KILN_CONTRACT_DELIVERY=archive copies the files in: no host mount at all', async () => {
    const cluster = `archive-${Date.now()}`;
    await grantCluster(project, cluster);
    const workerId = await clusterWorker(cluster, { KILN_CONTRACT_DELIVERY: 'archive' });
    const id = await queueTask(project, {
      code_name: 'hello',
      cluster,
      payload: '{"config":true,"stdin":true,"id":true,"sleep":3}',
    });
    await waitForTask(project, id, (t) => t.status === 'running');
    const [container] = await docker.listContainers({
      all: true,
      filters: { label: [`kiln.task=${id}`] },
    });
    const info = await docker.getContainer(container.Id).inspect();
    expect(info.Config.Labels['kiln.worker']).toBe(workerId);
    expect(info.HostConfig.Binds ?? []).toEqual([]);
    // With a read-only root the archive API needs a writable place: a volume of the container's
    // own (not a host directory), read-only inside the container, removed with it.
    expect(info.HostConfig.Mounts).toEqual([
      expect.objectContaining({ Type: 'volume', Target: '/mnt/kiln' }),
    ]);
    expect(info.Mounts).toEqual([
      expect.objectContaining({ Type: 'volume', Destination: '/mnt/kiln', Driver: 'local' }),
    ]);
    expect(info.HostConfig.ReadonlyPaths).toContain('/mnt/kiln');
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    expect(Object.keys(info.HostConfig.Tmpfs ?? {}).sort()).toEqual(['/mnt/task', '/tmp']);
    expect(existsSync(join(e2e().env.KILN_TASK_FILES_DIR, workerId))).toBe(false);
    const volume = info.Mounts[0].Name!;
    const task = await waitForTask(project, id);
    expect(task.status).toBe('complete');
    const log = (await taskLog(project, id)).text;
    expect(log).toContain('config: {"answer":42}');
    expect(log).toContain('stdin: {"config":true,"stdin":true,"id":true,"sleep":3}');
    expect(log).toContain('id: uid=65534');
    await waitUntil(`volume ${volume} removed with its container`, async () => {
      const volumes = await docker.listVolumes();
      return !(volumes.Volumes ?? []).some((v) => v.Name === volume);
    });
  });

  it('archive delivery: /mnt/kiln is read-only inside the container, even for root', async () => {
    const cluster = `archive-ro-${Date.now()}`;
    await grantCluster(project, cluster);
    await clusterWorker(cluster, { KILN_CONTRACT_DELIVERY: 'archive', KILN_CONTAINER_USER: '0:0' });
    await registerCode(project, 'archive-dirs', { command: 'sh /mnt/kiln/payload.json' });
    const script = [
      'id -u',
      'ls /mnt/kiln | tr "\n" " "; echo',
      'stat -c "%a %u" /mnt/kiln/payload.json',
      'touch /mnt/kiln/new 2>/dev/null || echo "kiln dir read-only"',
      'chmod 777 /mnt/kiln 2>/dev/null || echo "kiln dir mode unchangeable"',
      'touch /new 2>/dev/null || echo "root read-only"',
      'echo t > /tmp/t && cat /tmp/t',
      'echo d > "$TASK_DIR/d" && cat "$TASK_DIR/d"',
    ].join('\n');
    const id = await queueTask(project, { code_name: 'archive-dirs', cluster, payload: script });
    const task = await waitForTask(project, id);
    expect(task.status).toBe('complete');
    expect((await taskLog(project, id)).text).toBe(
      [
        '0',
        'config.json payload.json ',
        '444 0',
        'kiln dir read-only',
        'kiln dir mode unchangeable',
        'root read-only',
        't',
        'd',
        '',
      ].join('\n'),
    );
  });

  it('a worker that starts removes the files its earlier life left behind', async () => {
    const cluster = `files-${Date.now()}`;
    await grantCluster(project, cluster);
    const stale = join(e2e().env.KILN_TASK_FILES_DIR, `${cluster}-w`, '0123456789abcdef01234567.1');
    mkdirSync(stale, { recursive: true, mode: 0o700 });
    writeFileSync(join(stale, 'payload.json'), '{}');
    await clusterWorker(cluster);
    // Removed during the worker's start-up, before it takes any task.
    await waitUntil(`${stale} gone`, () => !existsSync(stale), {
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    expect(existsSync(stale)).toBe(false);
    const id = await queueTask(project, { code_name: 'hello', cluster, payload: '{"n":1}' });
    expect((await waitForTask(project, id)).status).toBe('complete');
    expect((await taskLog(project, id)).text).toBe('{"n":1}\n');
  });
});
