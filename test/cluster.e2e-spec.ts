import { ChildProcess, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { Balancer } from './support/balancer';
import { Engine } from './support/engine';
import { buildTestImage, docker } from './support/images';
import { waitUntil } from './support/kiln';
import { OwnStack } from './support/own-stack';
import { ROOT, freePort, waitForHealthy } from './support/processes';

jest.setTimeout(720_000);

const TASKS = 1000;
const LAPSE_SECONDS = 6;

/** Kiln's own image (docker/Dockerfile), built by scripts/build-kiln-image.sh (cached). */
const KILN_IMAGE = 'kiln:e2e';

/**
 * Issue 18 item 3: Kiln on many hosts. Two worker "hosts", each a worker with a Docker engine of
 * its own (the shared engine and a second dockerd), a third worker of cluster `east` on host B,
 * two API replicas behind a real haproxy and two schedulers, on one Postgres, Redis and registry.
 * The second API replica, the second scheduler and host B's worker run from Kiln's own image, as
 * containers (on the host's network; host B's worker with host B's engine socket). The task image
 * is uploaded through the balancer and pulled by each host from the platform registry.
 */
describe('Kiln on two worker hosts behind a load balancer', () => {
  const stack = new OwnStack('cluster', 110);
  const hostB = new Engine('cluster-b');
  const dir = mkdtempSync(join(tmpdir(), 'kiln-cluster-'));
  const tag = `kiln-test18/cluster-${randomBytes(3).toString('hex')}:1`;
  let balancer: Balancer;
  let db: Client;
  let project: { id: string; token: string };
  let image = '';
  const workers = new Map<string, ChildProcess>();
  const containers: string[] = [];
  let hostBWorker = '';
  const taskFiles = join(ROOT, '.kiln', `cluster-task-files-${randomBytes(3).toString('hex')}`);
  /** `docker run -d` of Kiln's image on the host's network with the stack's settings. */
  const runKiln = (command: string, vars: Record<string, string>, extra: string[] = []) => {
    const env: Record<string, string> = {
      ...stack.env,
      REGISTRY_URL: process.env.REGISTRY_URL!,
      KILN_REGISTRY_USERNAME: process.env.KILN_REGISTRY_USERNAME!,
      KILN_REGISTRY_PASSWORD: process.env.KILN_REGISTRY_PASSWORD!,
      KILN_UPLOAD_SPOOL_DIR: '/tmp/kiln-uploads',
      ...vars,
    };
    const id = execFileSync(
      'docker',
      [
        'run',
        '-d',
        '--network',
        'host',
        ...extra,
        ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
        KILN_IMAGE,
        command,
      ],
      { encoding: 'utf8' },
    ).trim();
    containers.push(id);
    return id;
  };
  const workerId = (label: string) => `${stack.env.KILN_QUEUE_PREFIX}-${label}`;

  const api = async (method: string, path: string, body?: unknown, type = 'application/json') => {
    const res = await fetch(`${balancer.url}/2/projects/${project.id}${path}`, {
      method,
      headers: { authorization: `OAuth ${project.token}`, 'content-type': type },
      body: body === undefined ? undefined : Buffer.isBuffer(body) ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text.startsWith('{') ? JSON.parse(text) : text };
  };
  /** Queues `count` tasks of `code` through the balancer, 100 per request; their ids. */
  const queue = async (code: string, payload: string, count: number, cluster = 'default') => {
    const ids: string[] = [];
    while (ids.length < count) {
      const n = Math.min(100, count - ids.length);
      const created = await api('POST', '/tasks', {
        tasks: Array.from({ length: n }, () => ({ code_name: code, payload, cluster })),
      });
      expect(created.status).toBe(200);
      ids.push(...created.body.tasks.map((t: { id: string }) => t.id));
    }
    return ids;
  };
  const rows = async (ids: string[]) =>
    (
      await db.query(
        `SELECT t.id, t.status, t.attempt, t.worker_id, t.start_time, t.end_time,
                string_agg(c.data, '' ORDER BY c.seq) AS log
           FROM tasks t LEFT JOIN task_log_chunks c ON c.task_id = t.id
          WHERE t.id = ANY($1) GROUP BY t.id`,
        [ids],
      )
    ).rows;
  const ended = async (ids: string[]) =>
    (
      await db.query(
        `SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1)
            AND status IN ('complete', 'error', 'killed', 'timeout', 'cancelled')`,
        [ids],
      )
    ).rows[0].n as number;
  const allEnded = (ids: string[], timeoutMs: number) =>
    waitUntil(`${ids.length} tasks to end`, async () => (await ended(ids)) === ids.length, {
      timeoutMs,
      intervalMs: 1000,
      state: async () => `${await ended(ids)} ended`,
    });
  /** A code (or its next revision) running its payload as a script in the uploaded image. */
  const code = async (name: string, extra: Record<string, unknown> = {}) => {
    const made = await api('POST', '/codes', {
      name,
      image,
      command: 'sh /mnt/kiln/payload.json',
      ...extra,
    });
    expect(made.status).toBe(200);
  };

  beforeAll(async () => {
    // Cold, a few minutes (npm ci and tsc on the host, then the image); warm, nothing is built.
    execFileSync('bash', [join(ROOT, 'scripts', 'build-kiln-image.sh'), KILN_IMAGE], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 600_000,
    });
    await hostB.start();
    await stack.create({
      KILN_WORKER_CONCURRENCY: '4',
      KILN_WORKER_HEARTBEAT_SECONDS: '2',
      KILN_HEARTBEAT_LAPSE_SECONDS: String(LAPSE_SECONDS),
      KILN_TRUSTED_PROXIES: 'loopback',
    });
    const apiPorts = [stack.port, stack.port + 1];
    balancer = new Balancer(apiPorts);
    await balancer.start();
    stack.start('api', { KILN_API_PORT: String(apiPorts[0]) }, 'api-0');
    runKiln('api', { KILN_API_PORT: String(apiPorts[1]) });
    for (const port of apiPorts) await waitForHealthy(`http://127.0.0.1:${port}/healthz`);
    const schedulerPorts = [await freePort(), await freePort()];
    stack.start(
      'scheduler',
      {
        KILN_SCHEDULER_ID: 'cluster-scheduler-0',
        KILN_SCHEDULER_HEALTH_PORT: String(schedulerPorts[0]),
      },
      'scheduler-0',
    );
    runKiln('scheduler', {
      KILN_SCHEDULER_ID: 'cluster-scheduler-1',
      KILN_SCHEDULER_HEALTH_PORT: String(schedulerPorts[1]),
    });
    for (const port of schedulerPorts) await waitForHealthy(`http://127.0.0.1:${port}/healthz`);
    workers.set('host-a', await stack.startWorker({}, 'host-a'));
    // Host B's worker: Kiln's image, user 1000 with the group of host B's engine socket; the task
    // files at the same path in the container and on the host (where host B's engine binds them).
    mkdirSync(taskFiles, { mode: 0o755 });
    chownSync(taskFiles, 1000, 1000);
    const hostBPort = await freePort();
    hostBWorker = runKiln(
      'worker',
      {
        DOCKER_SOCKET: '/var/run/docker.sock',
        KILN_TASK_FILES_DIR: taskFiles,
        KILN_WORKER_ID: workerId('host-b'),
        KILN_WORKER_HEALTH_PORT: String(hostBPort),
      },
      [
        '--group-add',
        String(statSync(hostB.socket).gid),
        '-v',
        `${hostB.socket}:/var/run/docker.sock`,
        '-v',
        `${taskFiles}:${taskFiles}`,
      ],
    );
    await waitForHealthy(`http://127.0.0.1:${hostBPort}/healthz`);
    workers.set(
      'host-b-east',
      await stack.startWorker(
        { DOCKER_SOCKET: hostB.socket, KILN_WORKER_CLUSTER: 'east' },
        'host-b-east',
      ),
    );
    await balancer.allUp();
    db = new Client({ connectionString: stack.database.url });
    await db.connect();
    project = await stack.newProject('cluster');
    await stack.grant(project.id, 'east');
    // The image reaches the hosts only through the platform registry: uploaded, then pulled.
    buildTestImage(tag, 'cluster');
    docker(['save', '-o', join(dir, 'image.tar'), tag]);
    const uploaded = await api(
      'POST',
      '/codes/cluster/image',
      readFileSync(join(dir, 'image.tar')),
      'application/x-tar',
    );
    expect(uploaded.status).toBe(200);
    image = uploaded.body.image;
    expect(image).toMatch(/@sha256:[0-9a-f]{64}$/);
    await code('cluster');
  }, 900_000);

  afterAll(async () => {
    await db?.end();
    balancer?.close();
    for (const id of containers) execFileSync('docker', ['rm', '-f', id], { stdio: 'ignore' });
    await stack.close();
    rmSync(taskFiles, { recursive: true, force: true });
    await hostB.stop();
    rmSync(dir, { recursive: true, force: true });
    try {
      docker(['rmi', tag]);
    } catch {
      // gone already
    }
  });

  it(`${TASKS} tasks spread over both hosts each run exactly once; the uploaded image is pulled on both`, async () => {
    const ids = await queue('cluster', 'echo ran', TASKS);
    await allEnded(ids, 600_000);
    const done = await rows(ids);
    expect(done.filter((r) => r.status !== 'complete' || r.attempt !== 1)).toEqual([]);
    // Each printed its output once.
    expect(done.filter((r) => r.log !== 'ran\n')).toEqual([]);
    const byHost = new Map<string, number>();
    for (const r of done) byHost.set(r.worker_id, (byHost.get(r.worker_id) ?? 0) + 1);
    expect([...byHost.keys()].sort()).toEqual([workerId('host-a'), workerId('host-b')].sort());
    for (const n of byHost.values()) expect(n).toBeGreaterThan(TASKS / 10);
    // Each host pulled the image by digest from the registry.
    expect(docker(['image', 'inspect', '--format', '{{.Id}}', image]).trim()).toMatch(/^sha256:/);
    expect(hostB.has(image)).toBe(true);
  });

  it("a code's max_concurrency holds across hosts", async () => {
    await code('capped', { max_concurrency: 2 });
    const ids = await queue('capped', 'sleep 1; echo capped', 12);
    await allEnded(ids, 120_000);
    const done = await rows(ids);
    expect(done.every((r) => r.status === 'complete')).toBe(true);
    // Most running at once, from the recorded run times (each inside its slot's true hold).
    const edges = done.flatMap((r) => [
      { at: new Date(r.start_time).getTime(), d: 1 },
      { at: new Date(r.end_time).getTime(), d: -1 },
    ]);
    edges.sort((a, b) => a.at - b.at || a.d - b.d);
    let now = 0;
    let most = 0;
    for (const edge of edges) most = Math.max(most, (now += edge.d));
    expect(most).toBe(2);
  });

  it("cluster routing sends a cluster's tasks only to its hosts", async () => {
    const ids = await queue('cluster', 'echo east', 20, 'east');
    await allEnded(ids, 120_000);
    const done = await rows(ids);
    expect(done.filter((r) => r.status !== 'complete')).toEqual([]);
    expect(new Set(done.map((r) => r.worker_id))).toEqual(new Set([workerId('host-b-east')]));
    // And no default-cluster task ever ran there.
    const { rows: strays } = await db.query(
      `SELECT count(*)::int AS n FROM tasks WHERE worker_id = $1 AND cluster <> 'east'`,
      [workerId('host-b-east')],
    );
    expect(strays[0].n).toBe(0);
  });

  it('killing host B (its workers and its engine) mid-run re-runs its tasks on host A', async () => {
    const ids = await queue('cluster', 'sleep 6; echo survived', 8);
    let onB: string[] = [];
    await waitUntil(
      'host B to run some of them',
      async () => {
        const { rows: running } = await db.query(
          `SELECT id FROM tasks WHERE id = ANY($1) AND status = 'running' AND worker_id = $2`,
          [ids, workerId('host-b')],
        );
        onB = running.map((r: { id: string }) => r.id);
        return onB.length > 0;
      },
      { timeoutMs: 60_000 },
    );
    // Host B dies: its worker's container, its east worker and its engine, all at once.
    execFileSync('docker', ['kill', hostBWorker], { stdio: 'ignore' });
    workers.get('host-b-east')!.kill('SIGKILL');
    hostB.kill();
    await allEnded(ids, 120_000);
    const done = await rows(ids);
    expect(done.filter((r) => r.status !== 'complete')).toEqual([]);
    for (const r of done.filter((row) => onB.includes(row.id))) {
      expect(r).toMatchObject({ attempt: 2, worker_id: workerId('host-a') });
      expect(r.log).toBe('survived\n');
    }
  });
});
