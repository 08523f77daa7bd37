import Docker from 'dockerode';
import { NODE_HOT, hotCalls } from './support/hot';
import { waitUntil } from './support/kiln';
import { OwnStack } from './support/own-stack';

/**
 * Issue 17, hot containers (docs/hot.md), as two projects on one worker see them: what project A's
 * hot codes can do to project B. The stack's one worker has 2 slots and room for 2 warm containers
 * (`KILN_HOT_MAX_CONTAINERS`), and never sees memory as short, so a container goes only when the
 * pool evicts it. The image is the locally built `kiln-test/node-hot` (an `@kiln/fdk` handler
 * driven by its payload; its first line names its container's hostname, the engine's short id).
 */
describe('hot containers between two projects', () => {
  const stack = new OwnStack('hottenants', 140);
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET });
  type Project = { id: string; token: string };
  let a: Project;
  let b: Project;
  let worker: string;

  const { as, queue, finished, log } = hotCalls(stack);

  /** A hot code of node-hot kept warm for the whole test (idle_timeout 600); its latest revision. */
  async function register(project: Project, name: string, settings: object = {}) {
    const res = await as(project, 'POST', '/codes', {
      name,
      image: NODE_HOT,
      hot: { idle_timeout: 600, max_containers: 1 },
      ...settings,
    });
    expect(res).toMatchObject({ status: 200 });
    return (await as(project, 'GET', `/codes/${res.body.id}`)).body.latest_history_id as string;
  }

  /** Runs one task to its end: its final state, its log, and the container it ran in. */
  async function run(project: Project, code: string, payload: object) {
    const [id] = await queue(project, code, [payload]);
    const task = await finished(project, id);
    const text = await log(project, id);
    return { id, task, log: text, container: /container=(\S+)/.exec(text)?.[1] };
  }

  /** The worker's hot containers, running or not. */
  const hotContainers = () =>
    docker.listContainers({
      all: true,
      filters: { label: [`kiln.worker=${worker}`, 'kiln.hot'] },
    });

  /** The ids of a revision's hot containers on the worker. */
  const containersOf = async (revision: string) =>
    (await hotContainers())
      .filter((container) => container.Labels['kiln.hot'] === revision)
      .map((container) => container.Id);

  beforeAll(async () => {
    await stack.create();
    await stack.startApi();
    worker = `${stack.env.KILN_QUEUE_PREFIX}-worker`;
    await stack.startWorker({
      KILN_WORKER_ID: worker,
      KILN_WORKER_CONCURRENCY: '2',
      KILN_HOT_MAX_CONTAINERS: '2',
      KILN_HOT_MIN_AVAILABLE_MB: '0',
    });
    a = await stack.newProject('hot-tenants-a');
    b = await stack.newProject('hot-tenants-b');
  }, 120_000);

  afterAll(async () => {
    await stack.close();
  });

  it("at the worker's cap, evicts B's idle container for A's code, then A's for B's: each task in a container of its own project", async () => {
    const kept = await register(b, 'kept', { config: { who: 'b' } });
    const fill1 = await register(a, 'fill-1', { config: { who: 'a' } });
    const fill2 = await register(a, 'fill-2', { config: { who: 'a' } });
    const projectOf: Record<string, string> = { [kept]: b.id, [fill1]: a.id, [fill2]: a.id };
    /** Every warm container is labelled with the project of its revision; never more than 2. */
    const expectOwnProjects = async () => {
      const listed = await hotContainers();
      expect(listed.length).toBeLessThanOrEqual(2);
      for (const container of listed) {
        expect(container.Labels['kiln.project']).toBe(projectOf[container.Labels['kiln.hot']]);
      }
    };
    /** A task's own lines, its project's config, and the container the engine lists for it. */
    const expectOwnRun = async (
      done: Awaited<ReturnType<typeof run>>,
      line: string,
      who: string,
      revision: string,
    ) => {
      expect(done.task).toMatchObject({ status: 'complete' });
      expect(done.log).toContain(`task=${done.id}\n`);
      expect(done.log).toContain(`${line}\n`);
      expect(done.log).toContain(`config={"who":"${who}"}\n`);
      const ids = await containersOf(revision);
      expect(ids).toHaveLength(1);
      expect(ids[0].startsWith(done.container!)).toBe(true);
      return ids[0];
    };

    const bFirst = await run(b, 'kept', { lines: ['b first'], printConfig: true });
    const bOld = await expectOwnRun(bFirst, 'b first', 'b', kept);
    // B's container and fill-1's: the worker is full, both idle.
    const aFirst = await run(a, 'fill-1', { lines: ['a one'], printConfig: true });
    const aOne = await expectOwnRun(aFirst, 'a one', 'a', fill1);
    expect(await containersOf(kept)).toEqual([bOld]);
    await expectOwnProjects();
    // fill-2 needs room: the least recently used idle container of another key goes, B's.
    const aSecond = await run(a, 'fill-2', { lines: ['a two'], printConfig: true });
    const aTwo = await expectOwnRun(aSecond, 'a two', 'a', fill2);
    await waitUntil('B container evicted', async () => (await containersOf(kept)).length === 0, {
      timeoutMs: 30_000,
    });
    expect(await containersOf(fill1)).toEqual([aOne]);
    await expectOwnProjects();
    // B's next task: A's fill-1 (now the least recently used) makes room for a new one of B's.
    const bSecond = await run(b, 'kept', { lines: ['b second'], printConfig: true });
    const bNew = await expectOwnRun(bSecond, 'b second', 'b', kept);
    expect(bNew).not.toBe(bOld);
    expect([aOne, aTwo]).not.toContain(bNew);
    expect(bSecond.log).not.toContain('a one');
    expect(bSecond.log).not.toContain('a two');
    await waitUntil('fill-1 evicted', async () => (await containersOf(fill1)).length === 0, {
      timeoutMs: 30_000,
    });
    expect(await containersOf(fill2)).toEqual([aTwo]);
    await expectOwnProjects();
    // A's evicted code runs again too, in a container of its own.
    const aAgain = await run(a, 'fill-1', { lines: ['a again'], printConfig: true });
    expect([bOld, bNew]).not.toContain(await expectOwnRun(aAgain, 'a again', 'a', fill1));
    // It made room by evicting fill-2's (the least recently used), not B's; the removal runs
    // beside the new container's start, so it is waited for.
    await waitUntil('fill-2 evicted', async () => (await containersOf(fill2)).length === 0, {
      timeoutMs: 30_000,
    });
    expect(await containersOf(kept)).toEqual([bNew]);
    await expectOwnProjects();
  }, 300_000);

  it("starts B's cold task within a turn of the slots while A's flood of hot tasks waits: not after A's backlog", async () => {
    // One container for A's 200 tasks of at least 250 ms each: A's backlog needs 50 s or more,
    // and its task waiting for the container holds the worker's other slot.
    await register(a, 'flood', { hot: { idle_timeout: 600, max_containers: 1 } });
    await register(b, 'cold', { hot: null });
    const flood: string[] = [];
    for (let i = 0; i < 2; i++) {
      flood.push(...(await queue(a, 'flood', Array(100).fill({ quiet: true, sleepMs: 250 }))));
    }
    /** A's flood tasks matching `query`: both pages of 100 (the flood is 200). */
    const listA = async (query: string) => {
      const pages = await Promise.all(
        [0, 1].map(
          async (page) =>
            (await as(a, 'GET', `/tasks?code_name=flood&per_page=100&page=${page}&${query}`)).body
              .tasks as unknown[],
        ),
      );
      return pages.flat();
    };
    await waitUntil('one of A’s tasks running', async () => (await listA('running=1')).length > 0, {
      timeoutMs: 60_000,
    });

    const [bId] = await queue(b, 'cold', [{ lines: ['b cold'] }]);
    let seen: any;
    await waitUntil(
      "B's task started",
      async () => (seen = (await as(b, 'GET', `/tasks/${bId}`)).body).status !== 'queued',
      { timeoutMs: 60_000, state: () => `it is ${seen?.status}` },
    );
    const aDone = (await listA('complete=1')).length;
    const bTask = await finished(b, bId);
    expect(bTask).toMatchObject({ status: 'complete' });
    expect((await as(b, 'GET', `/tasks/${bId}/log`)).body).toContain('b cold\n');
    // Round-robin between projects (docs/decisions/0006-fair-queues.md): B waited for a slot to
    // free, not for A's backlog, of which more than half was still to run when B's task started.
    expect(Date.parse(bTask.start_time) - Date.parse(bTask.created_at)).toBeLessThan(30_000);
    expect(aDone).toBeLessThan(100);

    // A's flood is cancelled, and nothing of it was lost or failed meanwhile.
    for (let i = 0; i < flood.length; i += 20) {
      await Promise.all(flood.slice(i, i + 20).map((id) => as(a, 'POST', `/tasks/${id}/cancel`)));
    }
    await waitUntil(
      'A’s flood ended',
      async () => (await listA('queued=1&preparing=1&running=1')).length === 0,
      { timeoutMs: 60_000 },
    );
    const ended = await Promise.all(
      flood.map(async (id) => (await as(a, 'GET', `/tasks/${id}`)).body),
    );
    expect(ended.filter((task) => !['complete', 'cancelled'].includes(task.status))).toEqual([]);
    expect(ended.filter((task) => task.status === 'complete').length).toBeGreaterThanOrEqual(aDone);
  }, 300_000);
});
