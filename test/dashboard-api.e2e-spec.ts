import { Kiln } from '@kiln/client';
import {
  Answer,
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
import { Receiver } from './support/receiver';

/**
 * What the dashboard reads and does through the public API (issue 16): project stats, cursor
 * paging and search of the task list, bulk cancel and retry, a task's retry chain and its webhook
 * deliveries. Two projects on one stack: `b` is the hostile one, and can neither count, cancel,
 * retry nor see `a`'s tasks, by id, filter or cursor.
 */
describe('the dashboard API', () => {
  let a: TestProject;
  let b: TestProject;
  let hooks: Receiver;
  const as = (project: TestProject, method: string, path: string, json?: unknown) =>
    call(method, `/2/projects/${project.projectId}${path}`, { token: project.token, json });
  /** `b`'s token on `a`'s project. */
  const intrude = (method: string, path: string, json?: unknown) =>
    call(method, `/2/projects/${a.projectId}${path}`, { token: b.token, json });

  // a's tasks: two complete, one error (with its own webhook), and delayed ones that stay queued.
  let complete: string[];
  let failed: string;
  let later: string[];
  let keep: string;
  let bQueued: string[];
  /** The retry of complete[1] (bulk retry by id, below). */
  let retriedComplete: string;

  const delayed = (project: TestProject, label: string) =>
    queueTask(project, { code_name: 'job', payload: '{}', delay: 3600, label });

  function expectBadRequest(res: Answer, msg: RegExp): void {
    expect({ status: res.status, msg: res.body?.msg }).toEqual({
      status: 400,
      msg: expect.stringMatching(msg),
    });
  }

  beforeAll(async () => {
    hooks = await new Receiver().start();
    a = await newProject('dashboard-a');
    b = await newProject('dashboard-b');
    for (const project of [a, b]) await registerCode(project, 'job');
    complete = [
      await queueTask(a, { code_name: 'job', payload: '{"note":"Needle one"}' }),
      await queueTask(a, { code_name: 'job', payload: '{"note":"needle two"}' }),
    ];
    failed = await queueTask(a, { code_name: 'job', payload: '{"exit":3}', webhook: hooks.url() });
    later = [await delayed(a, 'later'), await delayed(a, 'later')];
    keep = await delayed(a, 'keep');
    bQueued = [await delayed(b, 'later'), await delayed(b, 'later')];
    for (const id of [...complete, failed]) await waitForTask(a, id);
  });

  afterAll(async () => {
    await hooks?.close();
  });

  describe('GET stats', () => {
    it("counts a project's tasks per code and in a time series, and its queues now", async () => {
      const res = await as(a, 'GET', '/stats');
      expect(res.status).toBe(200);
      expect(res.body.bucket_seconds).toBe(3600);
      expect(res.body.codes).toEqual([
        {
          code_name: 'job',
          queued: 3,
          preparing: 0,
          running: 0,
          complete: 2,
          error: 1,
          cancelled: 0,
          killed: 0,
          timeout: 0,
        },
      ]);
      expect(res.body.series.length).toBeGreaterThanOrEqual(24);
      const sum = (field: string) =>
        (res.body.series as Record<string, number>[]).reduce((n, bucket) => n + bucket[field], 0);
      expect([sum('complete'), sum('error'), sum('timeout'), sum('killed')]).toEqual([2, 1, 0, 0]);
      expect(res.body.clusters).toEqual([
        {
          cluster: 'default',
          queued: 3,
          oldest_queued_at: expect.any(String),
          oldest_queued_seconds: expect.any(Number),
          running: 0,
        },
      ]);
      expect(res.body.running).toBe(0);
    });

    it("shows b only b's tasks, and refuses b's token on a's stats", async () => {
      const res = await as(b, 'GET', '/stats');
      expect(res.body.codes).toEqual([expect.objectContaining({ queued: 2, complete: 0 })]);
      expect(res.body.clusters).toEqual([expect.objectContaining({ queued: 2 })]);
      const intruded = await intrude('GET', '/stats');
      expect(intruded.status).toBe(401);
      expect(intruded.body.codes).toBeUndefined();
    });

    it('counts only the window asked for', async () => {
      const past = await as(a, 'GET', '/stats?start_date=1000000000&end_date=1000086400');
      expect(past.status).toBe(200);
      expect(past.body.codes).toEqual([]);
      expect(past.body.start).toBe('2001-09-09T01:46:40.000Z');
      // The queues are now's, whatever the window.
      expect(past.body.clusters[0].queued).toBe(3);
    });

    it('answers bad windows and unknown parameters with a 400', async () => {
      expectBadRequest(await as(a, 'GET', '/stats?start_date=yesterday'), /start_date/);
      expectBadRequest(
        await as(a, 'GET', '/stats?start_date=2000&end_date=1000'),
        /end_date must be after start_date/,
      );
      expectBadRequest(await as(a, 'GET', '/stats?from=1'), /unknown stats parameter "from"/);
    });
  });

  describe('GET tasks with a cursor or a search', () => {
    it('walks the list by cursor as the pages list it, and ends with next_cursor null', async () => {
      const plain = await as(a, 'GET', '/tasks?per_page=100');
      expect(Object.keys(plain.body)).toEqual(['tasks']);
      const all = (plain.body.tasks as { id: string }[]).map((task) => task.id);
      expect(all).toHaveLength(6);
      const walked: string[] = [];
      let cursor = '';
      for (let pages = 0; pages < 10; pages++) {
        const res = await as(a, 'GET', `/tasks?per_page=4&cursor=${cursor}`);
        expect(res.status).toBe(200);
        walked.push(...(res.body.tasks as { id: string }[]).map((task) => task.id));
        if (res.body.next_cursor === null) break;
        cursor = res.body.next_cursor as string;
      }
      expect(walked).toEqual(all);
      // a's cursor on b's list is only a place in b's list: b's own tasks, none of a's.
      const crossed = await as(b, 'GET', `/tasks?per_page=4&cursor=${cursor}`);
      expect(crossed.status).toBe(200);
      for (const task of crossed.body.tasks as { project_id: string }[]) {
        expect(task.project_id).toBe(b.projectId);
      }
    });

    it('searches payloads case-insensitively and finds a task by id, within the project', async () => {
      const found = await as(a, 'GET', '/tasks?q=NEEDLE');
      expect((found.body.tasks as { id: string }[]).map((task) => task.id)).toEqual(
        [...complete].reverse(),
      );
      expect(found.body.next_cursor).toBeNull();
      const byId = await as(a, 'GET', `/tasks?q=${failed}`);
      expect((byId.body.tasks as { id: string }[]).map((task) => task.id)).toEqual([failed]);
      expect((await as(b, 'GET', '/tasks?q=needle')).body.tasks).toEqual([]);
      expect((await as(b, 'GET', `/tasks?q=${failed}`)).body.tasks).toEqual([]);
      expect((await intrude('GET', '/tasks?q=needle')).status).toBe(401);
    });

    it('answers a bad cursor, a long q, or page with them with a 400', async () => {
      expectBadRequest(await as(a, 'GET', '/tasks?cursor=abc'), /cursor must be/);
      expectBadRequest(await as(a, 'GET', `/tasks?q=${'x'.repeat(300)}`), /q must be at most/);
      expectBadRequest(await as(a, 'GET', '/tasks?q=x&page=1'), /page cannot be combined/);
    });
  });

  describe('bulk cancel', () => {
    it('answers bad bodies with a 400 and changes nothing', async () => {
      const bodies: [unknown, RegExp][] = [
        [{}, /give either "ids"/],
        [{ ids: [keep], filter: {} }, /give either "ids"/],
        [{ ids: [] }, /ids must be a list of 1 to 1000/],
        [{ ids: ['nope'] }, /ids\[0\] is not a valid id/],
        [{ ids: Array.from({ length: 1001 }, () => keep) }, /ids must be a list of 1 to 1000/],
        [{ filter: 'all' }, /filter must be a JSON object/],
        [{ filter: { page: 1 } }, /unknown filter field "page"/],
        [{ filter: { label: ['keep'] } }, /filter.label must be/],
        [[keep], /body must be a JSON object/],
      ];
      for (const [body, msg] of bodies) {
        expectBadRequest(await as(a, 'POST', '/tasks/cancel', body), msg);
        expectBadRequest(await as(a, 'POST', '/tasks/retry', body), msg);
      }
      for (const id of [keep, ...later]) expect((await getTask(a, id)).status).toBe('queued');
      expect((await getTask(a, failed)).retry_task_id).toBeUndefined();
    });

    it("lets b cancel none of a's tasks, by id or by filter", async () => {
      const byId = await as(b, 'POST', '/tasks/cancel', { ids: [keep, ...later] });
      expect(byId.body).toEqual({ msg: 'Cancelled', cancelled: 0, not_found: 3 });
      const intruded = await intrude('POST', '/tasks/cancel', { filter: {} });
      expect(intruded.status).toBe(401);
      for (const id of [keep, ...later]) expect((await getTask(a, id)).status).toBe('queued');
    });

    it('cancels exactly the tasks matching a filter, and the ids given', async () => {
      const res = await as(a, 'POST', '/tasks/cancel', { filter: { label: 'later', queued: 1 } });
      expect(res.body).toEqual({ msg: 'Cancelled', cancelled: 2, more: false });
      for (const id of later) expect((await getTask(a, id)).status).toBe('cancelled');
      expect((await getTask(a, keep)).status).toBe('queued');
      // b's tasks of the same label are b's.
      for (const id of bQueued) expect((await getTask(b, id)).status).toBe('queued');
      // By id: one of a's, one of b's (not found here), one ended already (left as it is).
      const byId = await as(a, 'POST', '/tasks/cancel', { ids: [keep, bQueued[0], complete[0]] });
      expect(byId.body).toEqual({ msg: 'Cancelled', cancelled: 1, not_found: 1 });
      expect((await getTask(a, keep)).status).toBe('cancelled');
      expect((await getTask(a, complete[0])).status).toBe('complete');
      expect((await getTask(b, bQueued[0])).status).toBe('queued');
    });

    it("b's filter {} cancels all of b's tasks and none of a's", async () => {
      const res = await as(b, 'POST', '/tasks/cancel', { filter: {} });
      expect(res.body).toEqual({ msg: 'Cancelled', cancelled: 2, more: false });
      const stats = await as(a, 'GET', '/stats');
      expect(stats.body.codes[0]).toMatchObject({ complete: 2, error: 1, cancelled: 3, queued: 0 });
    });
  });

  describe('bulk retry, the retry chain and deliveries', () => {
    let retried: string;

    it("lets b retry none of a's tasks", async () => {
      const res = await as(b, 'POST', '/tasks/retry', { ids: [failed] });
      expect(res.body).toEqual({ msg: 'Queued up', retried: 0, tasks: [], not_found: 1 });
      expect((await intrude('POST', '/tasks/retry', { filter: { error: 1 } })).status).toBe(401);
      expect((await getTask(a, failed)).retry_task_id).toBeUndefined();
    });

    it('retries the ended tasks matching a filter once, linked to their originals', async () => {
      const res = await as(a, 'POST', '/tasks/retry', { filter: { error: 1 }, delay: 3600 });
      expect(res.body).toEqual({
        msg: 'Queued up',
        retried: 1,
        tasks: [{ id: expect.any(String), original_task_id: failed }],
        more: false,
      });
      retried = res.body.tasks[0].id as string;
      expect(await getTask(a, retried)).toMatchObject({
        status: 'queued',
        original_task_id: failed,
        retry_count: 1,
        delay: 3600,
      });
      expect((await getTask(a, failed)).retry_task_id).toBe(retried);
      // Retried already: a second request finds nothing more to retry.
      const again = await as(a, 'POST', '/tasks/retry', { filter: { error: 1 } });
      expect(again.body).toMatchObject({ retried: 0, more: false });
    });

    it('retries by id, counting ids of other projects as not found', async () => {
      const res = await as(a, 'POST', '/tasks/retry', {
        ids: [complete[1], bQueued[1]],
        delay: 3600,
      });
      expect(res.body).toMatchObject({ retried: 1, not_found: 1 });
      expect(res.body.tasks[0].original_task_id).toBe(complete[1]);
      retriedComplete = res.body.tasks[0].id as string;
      expectBadRequest(
        await as(a, 'POST', '/tasks/retry', { ids: [complete[1]], delay: -1 }),
        /delay/,
      );
    });

    it('shows the retry chain from either end, without payloads, within the project', async () => {
      for (const id of [failed, retried]) {
        const res = await as(a, 'GET', `/tasks/${id}/chain`);
        expect(res.status).toBe(200);
        expect((res.body.tasks as { id: string }[]).map((task) => task.id)).toEqual([
          failed,
          retried,
        ]);
        expect(res.body.tasks[0].payload).toBeUndefined();
      }
      expect((await as(b, 'GET', `/tasks/${failed}/chain`)).status).toBe(404);
      expect((await intrude('GET', `/tasks/${failed}/chain`)).status).toBe(401);
    });

    it("lists a task's webhook deliveries, to a's eyes only", async () => {
      await waitUntil('the delivery of the task webhook', async () =>
        ((await as(a, 'GET', `/tasks/${failed}/deliveries`)).body.deliveries ?? []).some(
          (d: { state: string }) => d.state === 'delivered',
        ),
      );
      const res = await as(a, 'GET', `/tasks/${failed}/deliveries`);
      expect(res.body.deliveries).toEqual([
        expect.objectContaining({
          task_id: failed,
          webhook_id: null,
          event_type: 'task.error',
          status_code: 200,
          state: 'delivered',
        }),
      ]);
      expect(hooks.forTask(failed)).toHaveLength(1);
      expect((await as(a, 'GET', `/tasks/${complete[0]}/deliveries`)).body.deliveries).toEqual([]);
      expect((await as(b, 'GET', `/tasks/${failed}/deliveries`)).status).toBe(404);
      expect((await intrude('GET', `/tasks/${failed}/deliveries`)).status).toBe(401);
    });
  });

  describe('@kiln/client', () => {
    const client = (project: TestProject) =>
      new Kiln({
        url: e2e().url,
        projectId: project.projectId,
        token: project.token,
        cwd: null,
        configFile: null,
        env: {},
      });

    it('reads stats, pages by cursor, searches, and shows chains and deliveries', async () => {
      const kiln = client(a);
      const stats = await kiln.tasks.stats();
      expect(stats.codes[0]).toMatchObject({ code_name: 'job', complete: 2, error: 1 });
      const first = await kiln.tasks.page({ perPage: 3 });
      expect(first.tasks).toHaveLength(3);
      const second = await kiln.tasks.page({ perPage: 3, cursor: first.next_cursor! });
      const listed: string[] = [];
      for await (const task of kiln.tasks.list()) listed.push(task.id);
      expect([...first.tasks, ...second.tasks].map((task) => task.id)).toEqual(listed.slice(0, 6));
      // complete[1] and its retry (the same payload), newest first.
      const found = await kiln.tasks.page({ q: 'needle two' });
      expect(found.tasks.map((task) => task.id)).toEqual([retriedComplete, complete[1]]);
      expect((await kiln.tasks.chain(failed)).map((task) => task.original_task_id)).toEqual([
        undefined,
        failed,
      ]);
      const deliveries: string[] = [];
      for await (const delivery of kiln.tasks.deliveries(failed)) {
        deliveries.push(delivery.task_id!);
      }
      expect(deliveries).toEqual([failed]);
    });

    it("cancels and retries in bulk, never another project's tasks", async () => {
      const kiln = client(a);
      const queued = [await delayed(a, 'client'), await delayed(a, 'client')];
      const theirs = await delayed(b, 'client');
      expect(await kiln.tasks.cancelMany({ ids: [queued[0], theirs] })).toEqual({
        cancelled: 1,
        notFound: 1,
      });
      expect(await kiln.tasks.cancelMany({ filter: { label: 'client' } })).toEqual({
        cancelled: 1,
        notFound: 0,
      });
      expect((await getTask(b, theirs)).status).toBe('queued');
      const retried = await kiln.tasks.retryMany({ filter: { label: 'client' } }, { delay: 3600 });
      expect(retried.tasks.map((task) => task.original_task_id).sort()).toEqual([...queued].sort());
      await client(b).tasks.cancelMany({ ids: [theirs] });
    });
  });
});
