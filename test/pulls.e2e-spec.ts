import Docker from 'dockerode';
import { execFileSync } from 'node:child_process';
import { waitUntil } from './support/kiln';
import { FakeRegistry, SilentServer } from './support/fake-registry';
import { OwnStack } from './support/own-stack';

const MIB = 1024 * 1024;
const FINAL = ['complete', 'error', 'cancelled', 'killed', 'timeout'];

/**
 * Issue 14, pulls: a registry that never answers or answers slowly cannot hold a worker's slots.
 * A stack of its own: its default worker (2 slots) gives a task 3 s for its image; a worker of
 * cluster `waits` (2 slots) 120 s, for the cancellation tests; a worker of cluster `small` runs
 * images of at most 1 MiB, and so does the API take uploads. The registries are the test's own,
 * on loopback (`KILN_IMAGE_REGISTRIES` lets 127.0.0.1 through on test stacks).
 */
describe('image pulls: deadline, cancellation, size cap', () => {
  const stack = new OwnStack('pulls', 60);
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET });
  const servers: { stop(): Promise<void> }[] = [];
  type Project = { id: string; token: string };
  let a: Project;
  let b: Project;

  const as = (project: Project, method: string, path: string, json?: unknown) =>
    stack.request(method, `/2/projects/${project.id}${path}`, json, project.token);

  async function code(project: Project, name: string, image: string) {
    const res = await as(project, 'POST', '/codes', { name, image });
    expect(res.status).toBe(200);
  }

  async function queue(project: Project, codeName: string, cluster = 'default') {
    const res = await as(project, 'POST', '/tasks', {
      tasks: [{ code_name: codeName, payload: '{}', cluster }],
    });
    expect(res.status).toBe(200);
    return res.body.tasks[0].id as string;
  }

  const task = async (project: Project, id: string) =>
    (await as(project, 'GET', `/tasks/${id}`)).body;

  async function until(
    project: Project,
    id: string,
    done: (t: any) => boolean,
    timeoutMs = 60_000,
  ) {
    let seen: any;
    await waitUntil(`task ${id}`, async () => done((seen = await task(project, id))), {
      timeoutMs,
      intervalMs: 100,
      state: () => `it is ${seen?.status} (${seen?.msg})`,
    });
    return seen;
  }
  const finished = (project: Project, id: string) =>
    until(project, id, (t) => FINAL.includes(t.status));

  async function started<T extends { start(): Promise<T>; stop(): Promise<void> }>(server: T) {
    servers.push(server);
    return server.start();
  }

  const hasImage = async (ref: string) =>
    docker
      .getImage(ref)
      .inspect()
      .then(
        () => true,
        () => false,
      );

  beforeAll(async () => {
    await stack.create({ KILN_PULL_TIMEOUT_SECONDS: '3', KILN_IMAGE_MAX_BYTES: String(MIB) });
    await stack.startApi();
    const big = String(8 * 1024 ** 3);
    await stack.startWorker({ KILN_WORKER_CONCURRENCY: '2', KILN_IMAGE_MAX_BYTES: big });
    await stack.startWorker(
      {
        KILN_WORKER_CLUSTER: 'waits',
        KILN_WORKER_CONCURRENCY: '2',
        KILN_PULL_TIMEOUT_SECONDS: '120',
        KILN_IMAGE_MAX_BYTES: big,
      },
      'waits',
    );
    await stack.startWorker({ KILN_WORKER_CLUSTER: 'small' }, 'small');
    a = await stack.newProject('pulls-a');
    b = await stack.newProject('pulls-b');
    for (const project of [a, b]) {
      for (const cluster of ['waits', 'small']) await stack.grant(project.id, cluster);
      await code(project, 'hello', 'kiln-test/busybox:latest');
    }
  });

  afterAll(async () => {
    await stack.close();
    await Promise.all(servers.map((server) => server.stop()));
  });

  it("a registry that never answers: A's task ends `error` at the deadline; B's task runs meanwhile", async () => {
    const silent = await started(new SilentServer());
    const image = `127.0.0.1:${silent.port}/x/y:z`;
    await code(a, 'silent', image);
    const queuedAt = Date.now();
    const mine = await queue(a, 'silent');
    const theirs = await queue(b, 'hello');
    const failed = await finished(a, mine);
    const tookMs = Date.now() - queuedAt;
    expect(failed).toMatchObject({
      status: 'error',
      msg: `Image pull timed out after 3 s (image ${image})`,
    });
    // 3 s, not the registry client's 15 s nor for ever; generous for a busy machine.
    expect(tookMs).toBeGreaterThanOrEqual(3000);
    expect(tookMs).toBeLessThan(14_000);
    expect(silent.accepted).toBeGreaterThanOrEqual(1);
    const done = await finished(b, theirs);
    expect(done.status).toBe('complete');
    expect(Date.parse(done.end_time)).toBeLessThan(Date.parse(failed.end_time));
    // The worker hung up on the registry when the task stopped waiting.
    await waitUntil('the connections closed', () => silent.sockets.size === 0, {
      timeoutMs: 10_000,
    });
  });

  it('a registry that answers slowly: the pull stops at the deadline, and the engine gives up its download', async () => {
    const slow = await started(new FakeRegistry('trickle'));
    const image = `${slow.host}/a/slow:1`;
    await code(a, 'slow', image);
    const mine = await queue(a, 'slow');
    await waitUntil('the engine downloading the layer', () => slow.openLayerDownloads > 0, {
      timeoutMs: 10_000,
      state: () => slow.requests.join(', '),
    });
    expect(await finished(a, mine)).toMatchObject({
      status: 'error',
      msg: `Image pull timed out after 3 s (image ${image})`,
    });
    // The worker closed its pull request; the engine then cancels the download.
    await waitUntil('the download closed', () => slow.openLayerDownloads === 0, {
      timeoutMs: 15_000,
    });
    expect(slow.abandonedLayerDownloads).toBeGreaterThanOrEqual(1);
    expect(await hasImage(image)).toBe(false);
  });

  it('a shared pull goes on while a task waits for it; a cancelled `preparing` task frees its slot at once; the last cancel stops the pull', async () => {
    const slow = await started(new FakeRegistry('trickle'));
    const image = `${slow.host}/a/shared:1`;
    await code(a, 'shared', image);
    const first = await queue(a, 'shared', 'waits');
    const second = await queue(a, 'shared', 'waits');
    for (const id of [first, second]) await until(a, id, (t) => t.status === 'preparing');
    await waitUntil('the engine downloading the layer', () => slow.openLayerDownloads > 0, {
      timeoutMs: 10_000,
    });
    // Both slots of `waits` are held: B's task can only start once one is freed.
    const theirs = await queue(b, 'hello', 'waits');

    const cancelledAt = Date.now();
    const cancel = await as(a, 'POST', `/tasks/${first}/cancel`);
    expect(cancel.status).toBe(200);
    expect((await task(a, first)).status).toBe('cancelled');
    const done = await finished(b, theirs);
    expect(done.status).toBe('complete');
    const freedAfterMs = Date.parse(done.start_time) - cancelledAt;
    console.log(
      `[pulls] B's task started ${freedAfterMs} ms after A's preparing task was cancelled`,
    );
    // Within 2 s on an idle machine; generous here, the machine is shared.
    expect(freedAfterMs).toBeGreaterThanOrEqual(-50);
    expect(freedAfterMs).toBeLessThan(10_000);
    // The other task still waits for the same pull, which goes on.
    expect((await task(a, second)).status).toBe('preparing');
    expect(slow.openLayerDownloads).toBeGreaterThan(0);
    expect(slow.abandonedLayerDownloads).toBe(0);

    expect((await as(a, 'POST', `/tasks/${second}/cancel`)).status).toBe(200);
    expect((await task(a, second)).status).toBe('cancelled');
    // No task waits any more: the pull is stopped, and the engine drops its download.
    await waitUntil('the download closed', () => slow.openLayerDownloads === 0, {
      timeoutMs: 15_000,
    });
    expect(slow.abandonedLayerDownloads).toBeGreaterThanOrEqual(1);
    expect(await hasImage(image)).toBe(false);
    // Both stay cancelled: the worker wrote nothing over them.
    for (const id of [first, second]) {
      expect(await task(a, id)).toMatchObject({ status: 'cancelled', msg: 'Cancelled' });
    }
  });

  it('an image over KILN_IMAGE_MAX_BYTES ends its task `error` naming its size and the cap; a pulled one is not kept', async () => {
    const registry = await started(new FakeRegistry('serve', 2 * MIB));
    const image = `${registry.host}/a/big:1`;
    await code(a, 'big', image);
    const failed = await finished(a, await queue(a, 'big', 'small'));
    expect(failed.status).toBe('error');
    expect(failed.msg).toMatch(
      new RegExp(
        `^Could not pull image ${image.replace(/[.]/g, '\\.')}: the image is too big: .*[0-9.]+ MiB \\(\\d+ bytes\\).*, over this server's cap of 1\\.0 MiB \\(1048576 bytes, KILN_IMAGE_MAX_BYTES\\)$`,
      ),
    );
    expect(failed.msg).toContain('its layers add up to at least 2.0 MiB');
    expect(await hasImage(image)).toBe(false);
    expect(await hasImage(`${registry.host}/a/big@${registry.manifestDigest}`)).toBe(false);

    // 3 MiB of zeros gzip to a few KiB: pulled whole, found too big, then removed.
    const zeros = await started(new FakeRegistry('serve', 3 * MIB, true));
    const sneaky = `${zeros.host}/a/zeros:1`;
    await code(a, 'zeros', sneaky);
    const refused = await finished(a, await queue(a, 'zeros', 'small'));
    expect(refused).toMatchObject({
      status: 'error',
      msg: expect.stringMatching(
        /: the image is too big: it is 3\.0 MiB \(\d+ bytes\), over this server's cap of 1\.0 MiB \(1048576 bytes, KILN_IMAGE_MAX_BYTES\)$/,
      ),
    });
    expect(await hasImage(sneaky)).toBe(false);
    expect(await hasImage(`${zeros.host}/a/zeros@${zeros.manifestDigest}`)).toBe(false);

    // An image the engine already had (the shared test image, 1.9 MiB) is refused, and left.
    const shared = await finished(b, await queue(b, 'hello', 'small'));
    expect(shared).toMatchObject({
      status: 'error',
      msg: expect.stringMatching(
        /^Could not pull image kiln-test\/busybox:latest: the image is too big: it is 1\.\d MiB \(\d+ bytes\), over this server's cap of 1\.0 MiB/,
      ),
    });
    expect(await hasImage('kiln-test/busybox:latest')).toBe(true);
  });

  it('an upload whose image is over KILN_IMAGE_MAX_BYTES is refused (413) and writes nothing', async () => {
    const tarball = execFileSync(
      'docker',
      ['-H', `unix://${process.env.DOCKER_SOCKET}`, 'save', 'kiln-test/busybox:latest'],
      { maxBuffer: 64 * MIB },
    );
    const res = await fetch(`${stack.url}/2/projects/${a.id}/codes/uploaded/image`, {
      method: 'POST',
      headers: { authorization: `OAuth ${a.token}`, 'content-type': 'application/x-tar' },
      body: tarball,
    });
    const body = (await res.json()) as { msg: string };
    expect(res.status).toBe(413);
    expect(body.msg).toMatch(
      /^the image is \d+ bytes \(its layers, un-gzipped\), over this server's cap of 1048576 bytes \(KILN_IMAGE_MAX_BYTES\)/,
    );
    const codes = (await as(a, 'GET', '/codes')).body.codes as { name: string }[];
    expect(codes.map((c) => c.name)).not.toContain('uploaded');
  });
});
