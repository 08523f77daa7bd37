import Docker from 'dockerode';
import { statfsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitUntil } from './support/kiln';
import { OwnStack, StackAnswer } from './support/own-stack';
import { buildImage, docker as dockerCli } from './support/images';
import { LOG_DIR } from './support/processes';

const MIB = 1024 * 1024;
const FINAL = ['complete', 'error', 'cancelled', 'killed', 'timeout'];

/**
 * Issue 14, containers: what a hostile project's task can do to the worker host. A stack of its
 * own whose worker (2 slots) has small caps, so that a task trying to write 20 GB is stopped
 * within a few MB: TASK_DIR and /tmp 8 MiB each, memory 64 MiB, one CPU, and codes may ask for
 * at most 1 CPU and 256 MB. Project B's tasks run beside project A's all along.
 */
describe('container limits: a tenant cannot fill the disk nor take the CPUs', () => {
  const stack = new OwnStack('limits', 50);
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET });
  const LIMITS = {
    KILN_TASK_DIR_MB: '8',
    KILN_CONTAINER_TMP_MB: '8',
    KILN_CONTAINER_MEMORY_MB: '64',
    KILN_CONTAINER_MEMORY_MB_MAX: '256',
    KILN_CONTAINER_CPUS: '1',
    KILN_CONTAINER_CPUS_MAX: '1',
  };
  type Project = { id: string; token: string };
  let a: Project;
  let b: Project;

  const as = (project: Project, method: string, path: string, json?: unknown) =>
    stack.request(method, `/2/projects/${project.id}${path}`, json, project.token);

  /** Registers `name` running its payload as a shell script, with `settings`. */
  async function scriptCode(project: Project, name: string, settings: object = {}) {
    const res = await as(project, 'POST', '/codes', {
      name,
      image: 'kiln-test/busybox:latest',
      command: 'sh /mnt/kiln/payload.json',
      ...settings,
    });
    expect(res.status).toBe(200);
    return res.body.id as string;
  }

  async function queue(project: Project, code: string, script: string, extra: object = {}) {
    const res = await as(project, 'POST', '/tasks', {
      tasks: [{ code_name: code, payload: script, ...extra }],
    });
    expect(res.status).toBe(200);
    return res.body.tasks[0].id as string;
  }

  async function task(project: Project, id: string) {
    return (await as(project, 'GET', `/tasks/${id}`)).body;
  }

  async function finished(project: Project, id: string, timeoutMs = 90_000) {
    let seen: any;
    await waitUntil(
      `task ${id} finished`,
      async () => FINAL.includes((seen = await task(project, id)).status),
      { timeoutMs, intervalMs: 200, state: () => `it is ${seen?.status}` },
    );
    return seen;
  }

  const log = async (project: Project, id: string) =>
    (await as(project, 'GET', `/tasks/${id}/log`)).body as string;

  const containerOf = async (taskId: string) => {
    const [found] = await docker.listContainers({
      all: true,
      filters: { label: [`kiln.task=${taskId}`] },
    });
    return found;
  };

  beforeAll(async () => {
    await stack.create(LIMITS);
    await stack.startApi();
    await stack.startWorker({ KILN_WORKER_CONCURRENCY: '2' });
    a = await stack.newProject('limits-a');
    b = await stack.newProject('limits-b');
    await scriptCode(a, 'script');
    await scriptCode(b, 'script');
  });

  afterAll(async () => {
    await stack.close();
  });

  describe('per-code cpus and memory', () => {
    function expectRefused(res: StackAnswer, msg: string) {
      expect({ status: res.status, body: res.body }).toEqual({ status: 400, body: { msg } });
    }
    const range = {
      cpus: "a number of CPUs from 0.01 to 1, this server's maximum",
      memory: "a whole number of MB from 6 to 256, this server's maximum",
    };

    it('are taken up to the maximum and shown on GET code and its revisions; unset is null', async () => {
      const id = await scriptCode(a, 'sized', { cpus: 0.5, memory: 128 });
      const code = await as(a, 'GET', `/codes/${id}`);
      expect(code.body).toMatchObject({ name: 'sized', rev: 1, cpus: 0.5, memory: 128 });
      const revisions = await as(a, 'GET', `/codes/${id}/revisions`);
      expect(revisions.body.revisions).toEqual([
        expect.objectContaining({ rev: 1, cpus: 0.5, memory: 128 }),
      ]);
      const plain = await as(a, 'GET', `/codes/${await scriptCode(a, 'plain')}`);
      expect(plain.body).toMatchObject({ cpus: null, memory: null });
    });

    it.each([
      [{ cpus: 2 }, `cpus must be at most 1 (${range.cpus})`],
      [{ cpus: 1.01 }, `cpus must be at most 1 (${range.cpus})`],
      [{ cpus: 0 }, `cpus must be at least 0.01 (${range.cpus})`],
      [{ cpus: -1 }, `cpus must be at least 0.01 (${range.cpus})`],
      [{ cpus: 'all of them' }, `cpus must be ${range.cpus}`],
      [{ cpus: '0.5' }, `cpus must be ${range.cpus}`],
      [{ memory: 257 }, `memory must be at most 256 (${range.memory})`],
      [{ memory: 0 }, `memory must be at least 6 (${range.memory})`],
      [{ memory: -512 }, `memory must be at least 6 (${range.memory})`],
      [{ memory: 64.5 }, `memory must be ${range.memory}`],
      [{ memory: '1G' }, `memory must be ${range.memory}`],
    ])("A's %j is a 400 naming the field and the limit; nothing is written", async (bad, msg) => {
      const before = await as(a, 'GET', '/codes');
      const othersBefore = await as(b, 'GET', '/codes');
      // A new revision of an existing code, and a new code: both refused whole.
      expectRefused(
        await as(a, 'POST', '/codes', { name: 'sized', image: 'kiln-test/busybox:latest', ...bad }),
        msg,
      );
      expectRefused(
        await as(a, 'POST', '/codes', {
          name: 'greedy',
          image: 'kiln-test/busybox:latest',
          ...bad,
        }),
        msg,
      );
      expect(await as(a, 'GET', '/codes')).toEqual(before);
      expect(await as(b, 'GET', '/codes')).toEqual(othersBefore);
    });

    it("IronWorker's multipart form is checked the same way", async () => {
      const form = new FormData();
      form.append(
        'data',
        JSON.stringify({ name: 'form', image: 'kiln-test/busybox:latest', cpus: 8 }),
      );
      const res = await fetch(`${stack.url}/2/projects/${a.id}/codes`, {
        method: 'POST',
        headers: { authorization: `OAuth ${a.token}` },
        body: form,
      });
      expect({ status: res.status, body: await res.json() }).toEqual({
        status: 400,
        body: { msg: `cpus must be at most 1 (${range.cpus})` },
      });
      const codes = (await as(a, 'GET', '/codes')).body.codes as { name: string }[];
      expect(codes.map((code) => code.name)).not.toContain('form');
    });
  });

  it('the created container: NanoCpus, memory, ulimits, read-only root, size-capped tmpfs (docker inspect)', async () => {
    const script = [
      'ulimit -n',
      'ulimit -c',
      // cgroup v1, else v2: the CFS quota that NanoCpus sets.
      'cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d" " -f1 /sys/fs/cgroup/cpu.max',
      'sleep 4',
    ].join('\n');
    const id = await queue(a, 'sized', script);
    await waitUntil('its container', async () => (await containerOf(id)) !== undefined, {
      timeoutMs: 60_000,
    });
    const info = await docker.getContainer((await containerOf(id)).Id).inspect();
    expect(info.HostConfig).toMatchObject({
      NanoCpus: 500_000_000,
      Memory: 128 * MIB,
      MemorySwap: 128 * MIB,
      PidsLimit: 256,
      ReadonlyRootfs: true,
      Ulimits: [
        { Name: 'nofile', Soft: 4096, Hard: 4096 },
        { Name: 'core', Soft: 0, Hard: 0 },
      ],
    });
    expect(info.HostConfig.StorageOpt ?? {}).toEqual({});
    const tmpfs = info.HostConfig.Tmpfs ?? {};
    expect(Object.keys(tmpfs).sort()).toEqual(['/mnt/task', '/tmp']);
    expect(tmpfs['/mnt/task'].split(',')).toContain(`size=${8 * MIB}`);
    expect(tmpfs['/tmp'].split(',')).toContain(`size=${8 * MIB}`);
    const done = await finished(a, id);
    expect(done.status).toBe('complete');
    expect(await log(a, id)).toBe('4096\n0\n50000\n');
  });

  it("A's tasks writing 20 GB to the root, /tmp and TASK_DIR end `error` saying why; the host disk is unchanged; B's task runs meanwhile", async () => {
    const dockerRoot = ((await docker.info()) as { DockerRootDir: string }).DockerRootDir;
    const filesDir = stack.env.KILN_TASK_FILES_DIR;
    const free = (path: string) => {
      const stats = statfsSync(path);
      return stats.bavail * stats.bsize;
    };
    const before = { docker: free(dockerRoot), files: free(filesDir) };
    // 20 GiB each, if nothing stopped them.
    const fill = (target: string) => `dd if=/dev/zero of=${target} bs=1M count=20480`;
    const fillers = {
      // The image's /var/tmp is world-writable (1777), as many images' are: on a writable root,
      // this would fill the engine's disk.
      root: await queue(a, 'script', fill('/var/tmp/fill')),
      tmp: await queue(a, 'script', fill('/tmp/fill')),
      taskDir: await queue(a, 'script', fill('"$TASK_DIR/fill"')),
    };
    const theirs = await queue(b, 'script', 'echo "B ran"; sleep 1; echo "B done"');

    const root = await finished(a, fillers.root);
    expect(root).toMatchObject({
      status: 'error',
      msg: 'exit code 1: a write failed, the root filesystem is read-only (write to TASK_DIR or /tmp)',
    });
    expect(await log(a, fillers.root)).toMatch(/Read-only file system/);
    const noSpace =
      "exit code 1: a write failed, no space left on device (TASK_DIR holds at most 8 MiB, /tmp 8 MiB; files in TASK_DIR and /tmp count in the task's memory)";
    for (const id of [fillers.tmp, fillers.taskDir]) {
      expect(await finished(a, id)).toMatchObject({ status: 'error', msg: noSpace });
      // Stopped at the cap: 8 MiB written, not 20 GiB.
      expect(await log(a, id)).toMatch(/No space left on device[\s\S]*\b8\+0 records out/);
    }
    expect(await finished(b, theirs)).toMatchObject({ status: 'complete', msg: '' });
    expect(await log(b, theirs)).toBe('B ran\nB done\n');

    // Other suites share the engine and the disk: a margin of 1 GiB, against 60 GiB tried.
    const after = { docker: free(dockerRoot), files: free(filesDir) };
    expect(before.docker - after.docker).toBeLessThan(1024 * MIB);
    expect(before.files - after.files).toBeLessThan(1024 * MIB);
  });

  it("an image's VOLUME gets a size-capped tmpfs, not a volume on the engine's disk", async () => {
    const image = `kiln-test/limits-volume-${stack.env.KILN_QUEUE_PREFIX}:latest`;
    buildImage(image, { cmd: ['/bin/sh'], volumes: ['/data'] });
    try {
      await scriptCode(a, 'volume', { image });
      const id = await queue(
        a,
        'volume',
        'busybox dd if=/dev/zero of=/data/fill bs=1M count=20480; sleep 2',
      );
      await waitUntil('its container', async () => (await containerOf(id)) !== undefined, {
        timeoutMs: 60_000,
      });
      const info = await docker.getContainer((await containerOf(id)).Id).inspect();
      expect(Object.keys(info.HostConfig.Tmpfs ?? {}).sort()).toEqual([
        '/data',
        '/mnt/task',
        '/tmp',
      ]);
      expect(info.HostConfig.Tmpfs!['/data'].split(',')).toContain(`size=${8 * MIB}`);
      expect(info.Mounts.filter((mount) => mount.Type === 'volume')).toEqual([]);
      const done = await finished(a, id);
      expect(done.status).toBe('complete');
      expect(await log(a, id)).toMatch(/No space left on device[\s\S]*\b8\+0 records out/);
    } finally {
      dockerCli(['rmi', '-f', image]);
    }
  });

  it('what a task writes to its tmpfs counts in its memory: past it, the task is killed', async () => {
    await scriptCode(a, 'small', { memory: 12 });
    const script = [
      'dd if=/dev/zero of=/tmp/fill bs=1M count=20480',
      'dd if=/dev/zero of="$TASK_DIR/fill" bs=1M count=20480',
    ].join('\n');
    const id = await queue(a, 'small', script);
    expect(await finished(a, id)).toMatchObject({ status: 'killed', msg: 'Killed: out of memory' });
  });

  it("A's CPU spinner (cpus 1, four busy threads) does not keep B's task from running", async () => {
    const spin = ['for i in 1 2 3 4; do (while :; do :; done) & done', 'sleep 8', 'echo spun'].join(
      '\n',
    );
    const spinner = await queue(a, 'script', spin);
    let seen: any;
    await waitUntil(
      'the spinner running',
      async () => (seen = await task(a, spinner)).status === 'running',
      {
        timeoutMs: 60_000,
        state: () => `it is ${seen?.status}`,
      },
    );
    const work = 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo "counted to $i"';
    const theirs = await queue(b, 'script', work);
    const done = await finished(b, theirs);
    expect(done.status).toBe('complete');
    expect(await log(b, theirs)).toBe('counted to 20000\n');
    const spun = await finished(a, spinner);
    expect(spun.status).toBe('complete');
    // B's task ran while A's spinner did.
    expect(Date.parse(done.end_time)).toBeLessThan(Date.parse(spun.end_time));
  });

  it('a writable root is refused at start where the storage driver cannot cap it (here: overlay2 on ext4)', async () => {
    // This engine runs overlay2 on ext4, which cannot cap a container's size: the refusal is what
    // can be shown here. (overlay2 on xfs with pquota, btrfs or zfs would start.)
    const worker = stack.start(
      'worker',
      {
        KILN_WORKER_ID: `${stack.env.KILN_QUEUE_PREFIX}-writable`,
        KILN_CONTAINER_WRITABLE_ROOT_MB: '100',
      },
      'writable',
    );
    const code = await new Promise<number | null>((resolve) => worker.once('exit', resolve));
    expect(code).toBe(2);
    const output = readFileSync(join(LOG_DIR, 'limits-writable.log'), 'utf8');
    expect(output).toMatch(
      /cannot start: KILN_CONTAINER_WRITABLE_ROOT_MB=100: the engine's storage driver, overlay2 on extfs, cannot cap the size of a container's root filesystem .*Unset it \(or set 0\)/,
    );
  });
});
