import {
  call,
  newProject,
  queueTask,
  registerCode,
  TestProject,
  waitForTask,
  waitUntil,
} from './support/kiln';
import { sleep } from './support/processes';
import { Receiver, validSignatures } from './support/receiver';

/**
 * Outgoing webhooks against real receivers on 127.0.0.1 (allow-listed for this suite's stack;
 * retries after 1 s, requests cut off at 2 s: see test/support/global-setup.ts).
 */
describe('outgoing webhooks', () => {
  let project: TestProject;
  const receivers: Receiver[] = [];
  const receiver = async (reply?: ConstructorParameters<typeof Receiver>[0]) => {
    const started = await new Receiver(reply).start();
    receivers.push(started);
    return started;
  };

  beforeAll(async () => {
    project = await newProject('webhooks-out');
    await registerCode(project, 'hooked');
  });

  afterAll(async () => {
    await Promise.all(receivers.map((r) => r.close()));
  });

  const api = (method: string, path: string, json?: unknown) =>
    call(method, `/2/projects/${project.projectId}${path}`, { token: project.token, json });

  async function subscribe(url: string, extra: Record<string, unknown> = {}) {
    const res = await api('POST', '/webhooks', { url, ...extra });
    expect(res.status).toBe(200);
    return res.body as { id: string; secret: string };
  }

  /** A delayed task cancelled at once: a task.queued and a task.cancelled event, no container. */
  async function cancelledTask(extra: Record<string, unknown> = {}): Promise<string> {
    const id = await queueTask(project, {
      code_name: 'hooked',
      payload: '{}',
      delay: 3600,
      ...extra,
    });
    expect((await api('POST', `/tasks/${id}/cancel`)).status).toBe(200);
    return id;
  }

  async function deliveries(webhookId: string) {
    const res = await api('GET', `/webhooks/${webhookId}/deliveries`);
    expect(res.status).toBe(200);
    return res.body.deliveries as any[];
  }

  async function waitForDelivery(webhookId: string, until: (d: any) => boolean, ms = 20_000) {
    let seen: any[] = [];
    await waitUntil(
      `such a delivery of ${webhookId}`,
      async () => (seen = await deliveries(webhookId)).some(until),
      { timeoutMs: ms, state: () => `deliveries ${JSON.stringify(seen)}` },
    );
    return seen.find(until);
  }

  it('creates, lists, reads, updates and deletes subscriptions; the secret is shown at creation only', async () => {
    const created = await api('POST', '/webhooks', {
      url: 'https://hooks.example.com/kiln',
      events: ['task.complete', 'task.error'],
      code_name: 'hooked',
      description: 'ci',
    });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({
      url: 'https://hooks.example.com/kiln',
      events: ['task.complete', 'task.error'],
      code_name: 'hooked',
      enabled: true,
      disabled_reason: null,
      description: 'ci',
    });
    expect(created.body.secret).toMatch(/^whsec_[A-Za-z0-9+/=]{32,}$/);
    const id = created.body.id;

    const defaults = await api('POST', '/webhooks', { url: 'http://hooks.example.com/all' });
    expect(defaults.body.events).toEqual([
      'task.queued',
      'task.running',
      'task.complete',
      'task.error',
      'task.timeout',
      'task.killed',
      'task.cancelled',
      'schedule.complete',
    ]);
    expect(defaults.body.code_name).toBeNull();

    const listed = await api('GET', '/webhooks');
    expect(listed.body.webhooks.map((w: any) => w.id)).toEqual(
      expect.arrayContaining([id, defaults.body.id]),
    );
    for (const w of listed.body.webhooks) expect(w.secret).toBeUndefined();
    const read = await api('GET', `/webhooks/${id}`);
    expect(read.body.secret).toBeUndefined();
    expect(read.body.url).toBe('https://hooks.example.com/kiln');

    const patched = await api('PATCH', `/webhooks/${id}`, {
      enabled: false,
      events: ['task.killed'],
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({
      enabled: false,
      events: ['task.killed'],
      code_name: 'hooked',
    });
    expect((await api('PATCH', `/webhooks/${id}`, { code_name: null })).body.code_name).toBeNull();

    expect((await api('DELETE', `/webhooks/${id}`)).body).toEqual({ msg: 'Deleted' });
    expect((await api('GET', `/webhooks/${id}`)).status).toBe(404);
    expect((await api('DELETE', `/webhooks/${defaults.body.id}`)).status).toBe(200);
  });

  it.each([
    [{}, 'url is required'],
    [{ url: 'ftp://x/' }, 'url must be an http or https URL'],
    [{ url: 'no url' }, 'url is not a valid URL'],
    [{ url: 'http://x/', events: ['task.done'] }, 'unknown event "task.done"'],
    [{ url: 'http://x/', events: [] }, 'events must name at least one event'],
    [{ url: 'http://x/', events: 'task.queued' }, 'events must be an array'],
    [{ url: 'http://x/', enabled: 'yes' }, 'enabled must be a boolean'],
    [{ url: 'http://169.254.169.254/latest/meta-data/' }, 'link-local'],
    [{ url: 'http://10.0.0.1/' }, 'private'],
    [{ url: 'http://[::ffff:169.254.169.254]/' }, 'link-local'],
  ])('refuses %j with a 400 and creates nothing', async (body, msg) => {
    const before = (await api('GET', '/webhooks')).body.webhooks.length;
    const res = await api('POST', '/webhooks', body);
    expect(res.status).toBe(400);
    expect(res.body.msg).toContain(msg);
    expect((await api('GET', '/webhooks')).body.webhooks.length).toBe(before);
  });

  it("delivers a task's state changes signed, in order of attempt and time, one webhook-id each", async () => {
    const hooks = await receiver();
    const { id: webhookId, secret } = await subscribe(hooks.url(), { code_name: 'hooked' });
    const taskId = await queueTask(project, { code_name: 'hooked', payload: '{"lines":2}' });
    await waitForTask(project, taskId);
    await hooks.waitFor((all) => all.some((r) => r.json?.type === 'task.complete'));
    const got = hooks.forTask(taskId);
    expect(got.map((r) => r.json.type)).toEqual(['task.queued', 'task.running', 'task.complete']);
    expect(got.map((r) => r.json.data.attempt)).toEqual([0, 1, 1]);
    const times = got.map((r) => Date.parse(r.json.timestamp));
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    for (const r of got) {
      expect(validSignatures(r, secret)).toBe(1);
      expect(r.headers['content-type']).toBe('application/json');
      expect(Math.abs(Number(r.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60);
      expect(r.json.data).toMatchObject({
        task_id: taskId,
        project_id: project.projectId,
        code_name: 'hooked',
        retry_count: 0,
        original_task_id: null,
      });
    }
    expect(new Set(got.map((r) => r.headers['webhook-id'])).size).toBe(3);
    const complete = got[2].json.data;
    expect(complete.status).toBe('complete');
    expect(Date.parse(complete.end_time)).toBeGreaterThanOrEqual(Date.parse(complete.start_time));
    // A signature made with another secret does not verify.
    expect(validSignatures(got[0], 'whsec_' + Buffer.alloc(24, 1).toString('base64'))).toBe(0);

    const log = await waitForDelivery(
      webhookId,
      (d) => d.event_type === 'task.complete' && d.state === 'delivered',
    );
    expect(log).toMatchObject({
      webhook_id: webhookId,
      task_id: taskId,
      attempt: 1,
      status_code: 200,
      error: null,
    });
    expect(log.message_id).toBe(got[2].headers['webhook-id']);
    expect(log.duration_ms).toBeGreaterThanOrEqual(0);
    await api('DELETE', `/webhooks/${webhookId}`);
  });

  it("calls a task's own webhook when it ends, signed with the project's task secret", async () => {
    const hooks = await receiver();
    const taskId = await queueTask(project, {
      code_name: 'hooked',
      payload: '{"exit":3}',
      webhook: hooks.url('/mine'),
    });
    expect((await api('GET', `/tasks/${taskId}`)).body.webhook).toBe(hooks.url('/mine'));
    await waitForTask(project, taskId);
    const [got] = await hooks.waitFor((all) => all.length >= 1);
    // A fixed window, not a wait for something: no second call may arrive within it.
    await sleep(500);
    expect(hooks.received).toHaveLength(1);
    expect(got.path).toBe('/mine');
    expect(got.json).toMatchObject({
      type: 'task.error',
      data: { task_id: taskId, status: 'error', msg: 'exit code 3' },
    });
    const { secret } = (await api('GET', '/webhooks/task_secret')).body;
    expect(secret).toMatch(/^whsec_/);
    expect(validSignatures(got, secret)).toBe(1);
  });

  it('a receiver that answers 500 twice then 200 gets the event three times with the same webhook-id', async () => {
    const hooks = await receiver((_req, res, index) => {
      res.statusCode = index < 2 ? 500 : 200;
      res.end();
    });
    const { id: webhookId } = await subscribe(hooks.url(), { events: ['task.cancelled'] });
    const taskId = await cancelledTask();
    await hooks.waitFor((all) => all.length >= 3);
    // A fixed window, not a wait for something: no fourth try may arrive within it.
    await sleep(2500);
    expect(hooks.received).toHaveLength(3);
    expect(new Set(hooks.received.map((r) => r.headers['webhook-id'])).size).toBe(1);
    expect(new Set(hooks.received.map((r) => r.body)).size).toBe(1);
    expect(hooks.received[0].json.data.task_id).toBe(taskId);
    // Backed off between tries (the suite's schedule is 1 s ± 10 %).
    expect(hooks.received[1].at - hooks.received[0].at).toBeGreaterThanOrEqual(800);
    const [log] = await deliveries(webhookId);
    expect(log).toMatchObject({ state: 'delivered', attempt: 3, status_code: 200, error: null });
    await api('DELETE', `/webhooks/${webhookId}`);
  });

  it('gives up after the retry schedule and records the failure', async () => {
    const hooks = await receiver((_req, res) => {
      res.statusCode = 503;
      res.end();
    });
    const { id: webhookId } = await subscribe(hooks.url(), { events: ['task.cancelled'] });
    await cancelledTask();
    const failed = await waitForDelivery(webhookId, (d) => d.state === 'failed');
    // One try and three retries (KILN_WEBHOOK_RETRY_SCHEDULE=1,1,1).
    expect(failed).toMatchObject({
      attempt: 4,
      status_code: 503,
      error: 'Endpoint answered 503',
      next_attempt_at: null,
    });
    expect(hooks.received).toHaveLength(4);
    await api('DELETE', `/webhooks/${webhookId}`);
  });

  it('410 Gone disables the endpoint: no more deliveries to it', async () => {
    const hooks = await receiver((_req, res) => {
      res.statusCode = 410;
      res.end();
    });
    const { id: webhookId } = await subscribe(hooks.url(), { events: ['task.cancelled'] });
    await cancelledTask();
    const log = await waitForDelivery(webhookId, (d) => d.state === 'failed');
    expect(log).toMatchObject({ status_code: 410, attempt: 1 });
    const webhook = (await api('GET', `/webhooks/${webhookId}`)).body;
    expect(webhook.enabled).toBe(false);
    expect(webhook.disabled_reason).toContain('410');
    await cancelledTask();
    // A fixed window, not a wait for something: the disabled endpoint may get nothing within it.
    await sleep(1500);
    expect(hooks.received).toHaveLength(1);
    expect(await deliveries(webhookId)).toHaveLength(1);
    // Enabling it again clears the reason.
    const enabled = await api('PATCH', `/webhooks/${webhookId}`, { enabled: true });
    expect(enabled.body).toMatchObject({ enabled: true, disabled_reason: null });
    await api('DELETE', `/webhooks/${webhookId}`);
  });

  it('does not follow a redirect: the 302 is a failed attempt, the target is never called', async () => {
    const hooks = await receiver((req, res) => {
      if (req.path === '/moved') {
        res.writeHead(302, { location: hooks.url('/target') });
        res.end();
      } else res.end('reached');
    });
    const { id: webhookId } = await subscribe(hooks.url('/moved'), { events: ['task.cancelled'] });
    await cancelledTask();
    const log = await waitForDelivery(webhookId, (d) => d.status_code === 302);
    expect(log.error).toBe('Redirect (302) not followed');
    await hooks.waitFor((all) => all.length >= 2);
    expect(hooks.received.every((r) => r.path === '/moved')).toBe(true);
    await api('DELETE', `/webhooks/${webhookId}`);
  });

  it('cuts off a receiver that never answers at the timeout, and retries', async () => {
    const hooks = await receiver(() => undefined);
    const { id: webhookId } = await subscribe(hooks.url(), { events: ['task.cancelled'] });
    await cancelledTask();
    const log = await waitForDelivery(webhookId, (d) => d.error !== null, 20_000);
    expect(log.error).toBe('timed out after 2000 ms');
    expect(log.status_code).toBeNull();
    expect(log.duration_ms).toBeGreaterThanOrEqual(1900);
    expect(log.duration_ms).toBeLessThan(4000);
    expect(log.state).toBe('pending');
    await api('DELETE', `/webhooks/${webhookId}`);
  });

  it('redelivers on request with the same webhook-id, and signs with both secrets after a rotation', async () => {
    const hooks = await receiver();
    const { id: webhookId, secret: oldSecret } = await subscribe(hooks.url(), {
      events: ['task.cancelled'],
    });
    await cancelledTask();
    const first = await waitForDelivery(webhookId, (d) => d.state === 'delivered');
    const rotated = await api('POST', `/webhooks/${webhookId}/rotate_secret`);
    expect(rotated.body).toMatchObject({ msg: 'Secret rotated.' });
    const newSecret = rotated.body.secret;
    expect(newSecret).toMatch(/^whsec_/);
    expect(newSecret).not.toBe(oldSecret);

    const again = await api('POST', `/webhooks/${webhookId}/deliveries/${first.id}/redeliver`);
    expect(again.body).toEqual({ msg: 'Redelivery queued.' });
    await hooks.waitFor((all) => all.length >= 2);
    const [before, after] = hooks.received;
    expect(after.headers['webhook-id']).toBe(before.headers['webhook-id']);
    expect(after.body).toBe(before.body);
    expect(validSignatures(before, oldSecret)).toBe(1);
    expect(String(after.headers['webhook-signature']).split(' ')).toHaveLength(2);
    expect(validSignatures(after, newSecret)).toBe(1);
    expect(validSignatures(after, oldSecret)).toBe(1);
    const log = await waitForDelivery(webhookId, (d) => d.state === 'delivered' && d.attempt === 2);
    expect(log.id).toBe(first.id);

    expect(
      (await api('POST', `/webhooks/${webhookId}/deliveries/ffffffffffffffffffffffff/redeliver`))
        .status,
    ).toBe(404);
    await api('DELETE', `/webhooks/${webhookId}`);
  });

  it('filters by event and code; a disabled subscription gets nothing', async () => {
    const hooks = await receiver();
    const other = await subscribe(hooks.url('/other-code'), { code_name: 'not-this-one' });
    const completeOnly = await subscribe(hooks.url('/complete-only'), {
      events: ['task.complete'],
    });
    const off = await subscribe(hooks.url('/off'), { enabled: false });
    const all = await subscribe(hooks.url('/all'));
    const taskId = await cancelledTask();
    await hooks.waitFor((got) => got.filter((r) => r.path === '/all').length >= 2);
    // A fixed window, not a wait for something: no other subscription may get anything within it.
    await sleep(1000);
    expect(hooks.received.map((r) => `${r.path} ${r.json.type}`).sort()).toEqual([
      '/all task.cancelled',
      '/all task.queued',
    ]);
    expect(hooks.forTask(taskId)).toHaveLength(2);
    for (const w of [other, completeOnly, off, all]) await api('DELETE', `/webhooks/${w.id}`);
  });

  it('sends schedule.complete when a schedule has run its times', async () => {
    const hooks = await receiver();
    const { id: webhookId, secret } = await subscribe(hooks.url(), {
      events: ['schedule.complete'],
    });
    const created = await api('POST', '/schedules', {
      schedules: [{ code_name: 'hooked', payload: '{}', run_every: 60, run_times: 1 }],
    });
    expect(created.status).toBe(200);
    const scheduleId = created.body.schedules[0].id;
    const [got] = await hooks.waitFor((all) => all.length >= 1, 30_000);
    expect(got.json).toMatchObject({
      type: 'schedule.complete',
      data: {
        schedule_id: scheduleId,
        project_id: project.projectId,
        status: 'complete',
        run_count: 1,
      },
    });
    expect(validSignatures(got, secret)).toBe(1);
    await api('DELETE', `/webhooks/${webhookId}`);
  });

  it('answers 404 for webhooks of another project or unknown ids', async () => {
    const stranger = await newProject('webhooks-stranger');
    const { id } = await subscribe('http://hooks.example.com/x');
    const res = await call('GET', `/2/projects/${stranger.projectId}/webhooks/${id}`, {
      token: stranger.token,
    });
    expect(res.status).toBe(404);
    expect((await api('GET', '/webhooks/ffffffffffffffffffffffff')).status).toBe(404);
    expect((await api('GET', '/webhooks/nope')).status).toBe(400);
    await api('DELETE', `/webhooks/${id}`);
  });
});
