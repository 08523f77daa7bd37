import net from 'node:net';
import { Client } from 'pg';
import { HEALTHY_ENDPOINT, TEST_IMAGE, waitUntil } from './support/kiln';
import { OwnStack, StackAnswer } from './support/own-stack';
import { freePort, sleep } from './support/processes';
import { Receiver, Reply, validSignatures } from './support/receiver';

/**
 * Webhook circuits, the backlog cap and fair delivery, against the real scheduler process (which
 * delivers webhooks) and real receivers on 127.0.0.1. Two stacks of their own (API and scheduler
 * each; no worker: tasks are queued through the API and completed by an UPDATE of `tasks.status`,
 * which fires the outbox triggers as a worker's finish does):
 *
 * - `circuits`: retries and probes every 2 s (KILN_WEBHOOK_RETRY_SCHEDULE=2,2,2, so an endpoint
 *   is disabled about 6 s after it opened), requests cut off at 3 s, and a dispatcher of 8 slots,
 *   at most 4 for one project and 2 for one endpoint, so that four stalling endpoints would fill
 *   it for 3 s at a time if the claim did not hold a project to its share.
 * - `parked`: the first probe a minute after an endpoint opens (it stays parked while a test
 *   looks), and a backlog cap of 5 pending deliveries per endpoint.
 */
describe('webhook circuits, backlog cap and fair delivery', () => {
  const STEP_MS = 2000;
  /** The least a retry step can be: 2 s less 10 % jitter, less a little for the clocks. */
  const MIN_STEP_MS = 1700;
  const MAX_PENDING = 5;
  const circuits = new OwnStack('circuits', 50);
  const parked = new OwnStack('parked', 51);
  const dbs = new Map<OwnStack, Client>();
  const receivers: Receiver[] = [];
  const stallers: { server: net.Server; sockets: Set<net.Socket> }[] = [];

  const receiver = async (reply?: Reply, port = 0) => {
    const started = await new Receiver(reply).start(port);
    receivers.push(started);
    return started;
  };

  /** A port that accepts connections and never answers: each request to it takes the 3-s timeout. */
  async function stallingPort(): Promise<number> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    stallers.push({ server, sockets });
    return (server.address() as net.AddressInfo).port;
  }

  /** Waits until the stack's scheduler LISTENs for the outbox triggers: it is delivering. */
  async function schedulerDelivering(stack: OwnStack): Promise<void> {
    await waitUntil(
      `the ${stack.url} scheduler listening for webhooks`,
      async () =>
        (
          await dbs.get(stack)!.query(
            `SELECT 1 FROM pg_stat_activity
                WHERE datname = current_database() AND query ILIKE 'LISTEN kiln_webhooks%'`,
          )
        ).rowCount! > 0,
      { timeoutMs: 60_000, intervalMs: 250 },
    );
  }

  beforeAll(async () => {
    await Promise.all([
      circuits.create({
        KILN_WEBHOOK_RETRY_SCHEDULE: '2,2,2',
        KILN_WEBHOOK_TIMEOUT_MS: '3000',
        KILN_WEBHOOK_CONCURRENCY: '8',
        KILN_WEBHOOK_PROJECT_CONCURRENCY: '4',
        KILN_WEBHOOK_ENDPOINT_CONCURRENCY: '2',
      }),
      parked.create({
        KILN_WEBHOOK_RETRY_SCHEDULE: '60',
        KILN_WEBHOOK_MAX_PENDING: String(MAX_PENDING),
      }),
    ]);
    for (const stack of [circuits, parked]) {
      const db = new Client({ connectionString: stack.database.url });
      await db.connect();
      dbs.set(stack, db);
      stack.start('scheduler');
    }
    await Promise.all([circuits.startApi(), parked.startApi()]);
    await Promise.all([schedulerDelivering(circuits), schedulerDelivering(parked)]);
  });

  afterAll(async () => {
    for (const db of dbs.values()) await db.end();
    await Promise.all([circuits.close(), parked.close()]);
    await Promise.all(receivers.map((r) => r.close()));
    for (const { server, sockets } of stallers) {
      server.close();
      for (const socket of sockets) socket.destroy();
    }
  });

  interface Tenant {
    id: string;
    token: string;
    stack: OwnStack;
    api(method: string, path: string, json?: unknown): Promise<StackAnswer>;
  }

  /** A project of its own on `stack`, with a code to queue tasks of. */
  async function tenant(stack: OwnStack, name: string): Promise<Tenant> {
    const { id, token } = await stack.newProject(name);
    const api = (method: string, path: string, json?: unknown) =>
      stack.request(method, `/2/projects/${id}${path}`, json, token);
    expect((await api('POST', '/codes', { name: 'hooked', image: TEST_IMAGE })).status).toBe(200);
    return { id, token, stack, api };
  }

  async function subscribe(t: Tenant, url: string, extra: Record<string, unknown> = {}) {
    const res = await t.api('POST', '/webhooks', { url, ...extra });
    expect(res.status).toBe(200);
    return res.body as { id: string; secret: string; url: string };
  }

  /** `count` tasks delayed an hour: nothing but the test moves them (no worker runs). */
  async function queue(t: Tenant, count: number, extra: Record<string, unknown> = {}) {
    const res = await t.api('POST', '/tasks', {
      tasks: Array.from({ length: count }, () => ({
        code_name: 'hooked',
        payload: '{}',
        delay: 3600,
        ...extra,
      })),
    });
    expect(res.status).toBe(200);
    return (res.body.tasks as { id: string }[]).map((task) => task.id);
  }

  /** Ends tasks as a worker's finish does: one UPDATE, whose trigger writes the webhook events. */
  async function complete(t: Tenant, ids: string[]): Promise<void> {
    const result = await dbs.get(t.stack)!.query(
      `UPDATE tasks
          SET status = 'complete', attempt = 1, start_time = now(), end_time = now(),
              duration_ms = 0, updated_at = now(), heartbeat_at = NULL
        WHERE id = ANY ($1::text[]) AND status = 'queued'`,
      [ids],
    );
    expect(result.rowCount).toBe(ids.length);
  }

  async function webhook(t: Tenant, id: string) {
    const res = await t.api('GET', `/webhooks/${id}`);
    expect(res.status).toBe(200);
    return res.body;
  }

  /** A subscription's deliveries, newest first. */
  async function deliveries(t: Tenant, id: string): Promise<any[]> {
    const res = await t.api('GET', `/webhooks/${id}/deliveries?per_page=100`);
    expect(res.status).toBe(200);
    return res.body.deliveries;
  }

  /** Waits until the subscription, as GET shows it, satisfies `until`; resolves with it. */
  async function waitForWebhook(
    t: Tenant,
    id: string,
    what: string,
    until: (view: any) => boolean,
    timeoutMs = 20_000,
  ): Promise<any> {
    let view: any;
    await waitUntil(what, async () => until((view = await webhook(t, id))), {
      timeoutMs,
      state: () => `the subscription is ${JSON.stringify(view)}`,
    });
    return view;
  }

  /** The circuit rows of a project's endpoints, by key. */
  async function endpointRows(t: Tenant) {
    const { rows } = await dbs.get(t.stack)!.query(
      `SELECT key, circuit, failures, probes, extract(epoch FROM probe_at - now())::float8 AS probe_in
         FROM webhook_endpoints WHERE project_id = $1 ORDER BY key`,
      [t.id],
    );
    return rows as {
      key: string;
      circuit: string;
      failures: number;
      probes: number;
      probe_in: number;
    }[];
  }

  it('parks an endpoint after five failures in a row, probes it once per retry step without attempting its backlog, and delivers the backlog in per-task order once it answers', async () => {
    const t = await tenant(circuits, 'parked-endpoint');
    let healthy = false;
    const answers: number[] = [];
    const hooks = await receiver((_req, res, index) => {
      answers[index] = healthy ? 200 : 500;
      res.statusCode = answers[index];
      res.end();
    });
    const hook = await subscribe(t, hooks.url(), { events: ['task.queued', 'task.complete'] });

    const first = await queue(t, 5);
    const open = await waitForWebhook(t, hook.id, 'five 500s to open the circuit', (view) => {
      return view.circuit === 'open';
    });
    expect(hooks.received).toHaveLength(5);
    expect(open).toMatchObject({
      circuit: 'open',
      failures: 5,
      last_error: 'Endpoint answered 500',
      pending: 5,
      dropped: 0,
    });
    const probeIn = Date.parse(open.next_probe_at) - Date.now();
    expect(probeIn).toBeGreaterThan(0);
    expect(probeIn).toBeLessThanOrEqual(STEP_MS * 1.1);

    // While it is parked the backlog grows: the five tasks end (each event waits behind its
    // task's first) and three more are queued (due at once, but the circuit holds them).
    await complete(t, first);
    const later = await queue(t, 3);
    const all = [...first, ...later];

    await hooks.waitFor((got) => got.length >= 7, 15_000, 'two probes');
    healthy = true;
    // Probes come one retry step apart, never sooner, and nothing else is sent meanwhile.
    const at = hooks.received.map((r) => r.at);
    expect(at[5] - at[4]).toBeGreaterThanOrEqual(MIN_STEP_MS);
    expect(at[6] - at[5]).toBeGreaterThanOrEqual(MIN_STEP_MS);
    // Only what was sent counts as an attempt: every other delivery is still at attempt 0.
    const parkedLog = await deliveries(t, hook.id);
    expect(parkedLog).toHaveLength(13);
    const sent = (messageId: string) =>
      hooks.received.filter((r) => r.headers['webhook-id'] === messageId).length;
    expect(parkedLog.map((d) => [d.message_id, d.attempt])).toEqual(
      parkedLog.map((d) => [d.message_id, sent(d.message_id)]),
    );
    expect(parkedLog.filter((d) => d.attempt === 0).length).toBeGreaterThanOrEqual(6);
    expect(parkedLog.every((d) => d.state === 'pending')).toBe(true);

    // The third probe gets a 200: the circuit closes and the whole backlog flows.
    let log: any[] = [];
    await waitUntil(
      'the whole backlog delivered',
      async () => (log = await deliveries(t, hook.id)).every((d) => d.state === 'delivered'),
      { timeoutMs: 20_000, state: () => `deliveries ${JSON.stringify(log)}` },
    );
    expect(hooks.received[7].at - hooks.received[6].at).toBeGreaterThanOrEqual(MIN_STEP_MS);
    expect(answers.slice(0, 7)).toEqual(Array(7).fill(500));
    expect(answers.slice(7).every((code) => code === 200)).toBe(true);
    // Each delivery got through exactly once.
    const delivered = hooks.received.filter((_r, index) => answers[index] === 200);
    expect(delivered.map((r) => r.headers['webhook-id']).sort()).toEqual(
      log.map((d) => d.message_id).sort(),
    );
    // Per task: every try of task.queued before its task.complete.
    const types = (taskId: string) =>
      hooks.received.filter((r) => r.json.data.task_id === taskId).map((r) => r.json.type);
    for (const taskId of first) {
      const got = types(taskId);
      expect({ taskId, got }).toEqual({
        taskId,
        got: [...got.filter((type) => type === 'task.queued'), 'task.complete'],
      });
    }
    expect(all.every((taskId) => types(taskId).includes('task.queued'))).toBe(true);
    expect(await webhook(t, hook.id)).toMatchObject({
      ...HEALTHY_ENDPOINT,
    });
  });

  it('disables a subscription whose probes used the retry schedule up, fails its backlog and notifies the project’s other subscriptions (signed), not another project’s; enabling it closes the circuit', async () => {
    const t = await tenant(circuits, 'disabled-endpoint');
    const stranger = await tenant(circuits, 'disabled-stranger');
    const deadPort = await freePort();
    const deadUrl = `http://127.0.0.1:${deadPort}/hook`;
    const dead = await subscribe(t, deadUrl, { events: ['task.complete'] });
    const watcher = await receiver();
    // The notice is sent whatever the subscription's events.
    const watching = await subscribe(t, watcher.url(), { events: ['task.killed'] });
    const strangerHooks = await receiver();
    await subscribe(stranger, strangerHooks.url());

    const tasks = await queue(t, 9);
    await complete(t, tasks.slice(0, 2));
    const open = await waitForWebhook(t, dead.id, 'a refused connection to open it', (view) => {
      return view.circuit === 'open';
    });
    expect(open.last_error).toBe('connection refused');
    expect(open.next_probe_at).not.toBeNull();
    // A backlog that only the probes will touch.
    await complete(t, tasks.slice(2, 8));

    const disabled = await waitForWebhook(
      t,
      dead.id,
      'the probes to use the schedule up and disable it',
      (view) => view.enabled === false,
    );
    expect(disabled).toMatchObject({
      enabled: false,
      circuit: 'disabled',
      next_probe_at: null,
      pending: 0,
    });
    expect(disabled.disabled_reason).toMatch(/^Endpoint failed for \d+ min: connection refused$/);
    const log = await deliveries(t, dead.id);
    expect(log).toHaveLength(8);
    expect(log.every((d) => d.state === 'failed' && d.error === 'Endpoint disabled')).toBe(true);
    expect(log.filter((d) => d.attempt === 0).length).toBeGreaterThanOrEqual(3);

    const [notice] = await watcher.waitFor(
      (got) => got.length >= 1,
      10_000,
      'the webhook.disabled notice',
    );
    expect(notice.json).toEqual({
      type: 'webhook.disabled',
      timestamp: expect.any(String),
      data: {
        project_id: t.id,
        webhook_id: dead.id,
        url: deadUrl,
        reason: disabled.disabled_reason,
      },
    });
    expect(validSignatures(notice, watching.secret)).toBe(1);
    expect(validSignatures(notice, dead.secret)).toBe(0);
    // A fixed window, not a wait for something: no second notice, nothing to the other project.
    await sleep(1000);
    expect(watcher.received).toHaveLength(1);
    expect(strangerHooks.received).toEqual([]);

    // Its owner enables it again (the endpoint is back): a closed circuit, deliveries flow.
    const revived = await receiver(undefined, deadPort);
    const enabled = await t.api('PATCH', `/webhooks/${dead.id}`, { enabled: true });
    expect(enabled.status).toBe(200);
    expect(enabled.body).toMatchObject({
      enabled: true,
      disabled_reason: null,
      circuit: 'closed',
      failures: 0,
      next_probe_at: null,
      last_error: null,
    });
    await complete(t, tasks.slice(8));
    const [got] = await revived.waitFor((all) => all.length >= 1, 10_000, 'a delivery again');
    expect(got.json).toMatchObject({ type: 'task.complete', data: { task_id: tasks[8] } });
    expect(validSignatures(got, dead.secret)).toBe(1);
  });

  it('410 Gone disables the subscription at once, with a notice to the project’s others', async () => {
    const t = await tenant(circuits, 'gone-endpoint');
    const goneHooks = await receiver((_req, res) => {
      res.statusCode = 410;
      res.end();
    });
    const gone = await subscribe(t, goneHooks.url(), { events: ['task.complete'] });
    const watcher = await receiver();
    const watching = await subscribe(t, watcher.url(), { events: ['task.killed'] });
    await complete(t, await queue(t, 1));
    const [notice] = await watcher.waitFor((got) => got.length >= 1, 10_000, 'the notice');
    expect(notice.json).toMatchObject({
      type: 'webhook.disabled',
      data: {
        project_id: t.id,
        webhook_id: gone.id,
        url: goneHooks.url(),
        reason: 'Endpoint answered 410 Gone',
      },
    });
    expect(validSignatures(notice, watching.secret)).toBe(1);
    expect(await webhook(t, gone.id)).toMatchObject({
      enabled: false,
      disabled_reason: 'Endpoint answered 410 Gone',
      circuit: 'disabled',
    });
    expect(goneHooks.received).toHaveLength(1);
  });

  it('cuts a parked endpoint’s backlog to the newest KILN_WEBHOOK_MAX_PENDING: the oldest are dropped and counted', async () => {
    const t = await tenant(parked, 'backlog-cap');
    const hook = await subscribe(t, `http://127.0.0.1:${await freePort()}/hook`, {
      events: ['task.queued'],
    });
    // One refused connection parks it for a minute.
    await queue(t, 1);
    await waitForWebhook(t, hook.id, 'a refused connection to open it', (view) => {
      return view.circuit === 'open';
    });
    // Queued one by one, so that the tasks (and their deliveries) are made in this order.
    const tasks: string[] = [];
    for (let i = 0; i < 9; i++) tasks.push(...(await queue(t, 1)));

    const view = await waitForWebhook(
      t,
      hook.id,
      'the 5-second sweep to cut the backlog',
      (v) => v.pending === MAX_PENDING,
      15_000,
    );
    expect(view).toMatchObject({ circuit: 'open', pending: MAX_PENDING, dropped: 5 });
    const log = await deliveries(t, hook.id);
    expect(log).toHaveLength(10);
    const dropped = log.filter((d) => d.state === 'dropped');
    expect(dropped).toHaveLength(view.dropped);
    for (const d of dropped) {
      expect(d).toMatchObject({
        error: `Dropped: the endpoint had more than ${MAX_PENDING} pending deliveries`,
        next_attempt_at: null,
      });
    }
    // Of the deliveries never tried, the newest are kept: newest first, the pending ones, then
    // only dropped ones.
    const neverTried = log.filter((d) => d.attempt === 0).map((d) => d.state);
    const kept = neverTried.filter((state) => state === 'pending').length;
    expect(neverTried).toEqual([
      ...Array<string>(kept).fill('pending'),
      ...Array<string>(neverTried.length - kept).fill('dropped'),
    ]);
    expect(log[0]).toMatchObject({ task_id: tasks[8], state: 'pending' });
  });

  it('a task webhook origin used by two projects has a circuit per project: one parked is not the other parked', async () => {
    const a = await tenant(parked, 'shared-origin-a');
    const b = await tenant(parked, 'shared-origin-b');
    const origin = `http://127.0.0.1:${await freePort()}`;
    const db = dbs.get(parked)!;
    const urlDelivery = async (taskId: string) =>
      (
        await db.query(
          `SELECT attempt, error, endpoint_key FROM webhook_deliveries
            WHERE task_id = $1 AND url IS NOT NULL`,
          [taskId],
        )
      ).rows[0];

    const [aFirst, aSecond] = await queue(a, 2, { webhook: `${origin}/a` });
    await complete(a, [aFirst]);
    let rows: Awaited<ReturnType<typeof endpointRows>> = [];
    await waitUntil(
      "A's task URL endpoint parked",
      async () => (rows = await endpointRows(a)).some((row) => row.circuit === 'open'),
      { timeoutMs: 15_000, state: () => `endpoints ${JSON.stringify(rows)}` },
    );
    expect(rows).toEqual([
      expect.objectContaining({ key: `url:${a.id}:${origin}`, circuit: 'open', failures: 1 }),
    ]);

    // B's task calls the same origin: tried at once, although A's next probe is a minute away.
    const [bTask] = await queue(b, 1, { webhook: `${origin}/b` });
    await complete(b, [bTask]);
    await complete(a, [aSecond]);
    let row: any;
    // The attempt counts when the delivery is claimed; the error once its outcome is recorded.
    await waitUntil(
      "B's task webhook tried and its failure recorded",
      async () => Boolean((row = await urlDelivery(bTask))?.error),
      { timeoutMs: 5000, state: () => `B's delivery ${JSON.stringify(row)}` },
    );
    expect(row.attempt).toBe(1);
    expect(row.error).toBe('connection refused');
    expect(row.endpoint_key).toBe(`url:${b.id}:${origin}`);
    expect(await endpointRows(b)).toEqual([
      expect.objectContaining({ key: `url:${b.id}:${origin}`, circuit: 'open', failures: 1 }),
    ]);
    // A fixed window, not a wait for something: A's own later delivery stays parked in it.
    await sleep(1000);
    expect(await urlDelivery(aSecond)).toMatchObject({ attempt: 0 });
    const [aRow] = await endpointRows(a);
    expect(aRow).toMatchObject({ circuit: 'open', failures: 1, probes: 0 });
    expect(aRow.probe_in).toBeGreaterThan(40);
  });

  it("one tenant's dead endpoints do not delay another's webhooks; nor can it see or reset the other's subscriptions", async () => {
    const a = await tenant(circuits, 'noisy');
    const b = await tenant(circuits, 'quiet');
    const stall = await stallingPort();
    const aHooks = [
      // Four stalling endpoints, two requests each in flight for 3 s: the dispatcher's 8 slots,
      // were A not held to its 4.
      ...(await Promise.all(
        [1, 2, 3, 4].map((n) =>
          subscribe(a, `http://127.0.0.1:${stall}/stall/${n}`, { events: ['task.complete'] }),
        ),
      )),
      await subscribe(a, `http://127.0.0.1:${await freePort()}/refused`, {
        events: ['task.complete'],
      }),
    ];
    const quiet = await receiver();
    await subscribe(b, quiet.url(), { events: ['task.complete'] });
    const aTasks = await queue(a, 60, { webhook: `http://127.0.0.1:${await freePort()}/task` });
    const bTasks = await queue(b, 20);

    // A burst of A's first: every slot A may take stalls at once (all of them, were it not held
    // to its share, and none would free for 3 s). Then a steady flow for 6 s: one of A's tasks
    // ends every 150 ms, one of B's every 300 ms (the pause paces the flow; it waits for nothing).
    await complete(a, aTasks.slice(0, 20));
    for (let i = 20; i < aTasks.length; i++) {
      await complete(a, [aTasks[i]]);
      if (i % 2 === 0) await complete(b, [bTasks[(i - 20) / 2]]);
      await sleep(150);
    }
    await quiet.waitFor((got) => got.length >= bTasks.length, 10_000, "B's 20 events");
    const delays = quiet.received.map((r) => r.at - Date.parse(r.json.timestamp));
    expect({ delays, slow: delays.filter((ms) => ms >= 2000) }).toEqual({ delays, slow: [] });
    expect(quiet.received.map((r) => r.json.data.task_id).sort()).toEqual([...bTasks].sort());
    expect(quiet.received.every((r) => r.json.data.project_id === b.id)).toBe(true);

    // A's endpoints were indeed failing all along.
    for (const hook of aHooks) {
      const view = await webhook(a, hook.id);
      expect({ hook: hook.url, error: view.last_error }).toEqual({
        hook: hook.url,
        error: expect.stringMatching(/timed out|connection refused/),
      });
    }

    // B's token reaches none of A's subscriptions: through B's project they do not exist, and
    // A's project is not B's.
    const refusedHook = aHooks[4];
    const before = await webhook(a, refusedHook.id);
    const asB = (method: string, path: string, json?: unknown) =>
      circuits.request(method, path, json, b.token);
    expect((await asB('GET', `/2/projects/${b.id}/webhooks/${refusedHook.id}`)).status).toBe(404);
    expect(
      (await asB('PATCH', `/2/projects/${b.id}/webhooks/${refusedHook.id}`, { enabled: true }))
        .status,
    ).toBe(404);
    expect((await asB('GET', `/2/projects/${a.id}/webhooks/${refusedHook.id}`)).status).toBe(401);
    expect(
      (await asB('PATCH', `/2/projects/${a.id}/webhooks/${refusedHook.id}`, { enabled: true }))
        .status,
    ).toBe(401);
    const after = await webhook(a, refusedHook.id);
    expect(after.circuit).toBe(before.circuit);
    expect(after.enabled).toBe(before.enabled);
  });
});
