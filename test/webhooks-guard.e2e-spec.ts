import type { ChildProcess } from 'node:child_process';
import { Client } from 'pg';
import { waitUntil } from './support/kiln';
import { OwnStack } from './support/own-stack';
import { sleep } from './support/processes';
import { Receiver } from './support/receiver';

/**
 * A stack of its own (database, API, scheduler replicas) whose allow-list is one receiver's
 * exact `127.0.0.1:<port>`, so that any other 127.0.0.1 URL is refused; and whose scheduler —
 * the process that delivers webhooks — is `kill -9`ed in the middle of a delivery.
 */
describe('webhook delivery guard and durability', () => {
  const TIMEOUT_MS = 3000;
  const stack = new OwnStack('hooks', 30);
  const allowed = new Receiver();
  const refused = new Receiver();
  const schedulers: ChildProcess[] = [];
  let db: Client;
  let projectId: string;
  let token: string;

  const api = (method: string, path: string, json?: unknown) =>
    stack.request(method, `/2/projects/${projectId}${path}`, json, token);

  const scheduler = (label: string) => {
    const child = stack.start('scheduler', {}, label);
    schedulers.push(child);
    return child;
  };

  beforeAll(async () => {
    await allowed.start();
    await refused.start();
    await stack.create({
      WEBHOOK_ALLOWED_HOSTS: `127.0.0.1:${allowed.port}`,
      KILN_WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
      KILN_WEBHOOK_RETRY_SCHEDULE: '1,1,1,1,1',
    });
    await stack.startApi();
    db = new Client({ connectionString: stack.database.url });
    await db.connect();
    ({ id: projectId, token } = await stack.newProject('hooks'));
    await api('POST', '/codes', { name: 'guarded', image: 'kiln-test/busybox:latest' });
  });

  afterAll(async () => {
    await db?.end();
    await stack.close();
    await allowed.close();
    await refused.close();
  });

  /** A delayed task, cancelled at once: one task.cancelled event. */
  async function cancelledTask(extra: Record<string, unknown> = {}): Promise<string> {
    const queued = await api('POST', '/tasks', {
      tasks: [{ code_name: 'guarded', payload: '{}', delay: 3600, ...extra }],
    });
    expect(queued.status).toBe(200);
    const id = queued.body.tasks[0].id;
    expect((await api('POST', `/tasks/${id}/cancel`)).status).toBe(200);
    return id;
  }

  async function deliveryRow(taskId: string) {
    const rows = await db.query(`SELECT * FROM webhook_deliveries WHERE task_id = $1`, [taskId]);
    return rows.rows[0];
  }

  it('refuses 127.0.0.1 on a port that is not allow-listed, and the metadata address, at registration', async () => {
    const loopback = await api('POST', '/webhooks', { url: refused.url() });
    expect(loopback.status).toBe(400);
    expect(loopback.body.msg).toContain('loopback');
    const metadata = await api('POST', '/webhooks', {
      url: 'http://169.254.169.254/latest/meta-data/iam/',
    });
    expect(metadata.status).toBe(400);
    expect(metadata.body.msg).toContain('link-local');
    const perTask = await api('POST', '/tasks', {
      tasks: [{ code_name: 'guarded', webhook: 'http://169.254.169.254/' }],
    });
    expect(perTask.status).toBe(400);
    expect(perTask.body.msg).toContain('tasks[0].webhook');
    expect((await api('POST', '/webhooks', { url: allowed.url() })).status).toBe(200);
    const { body } = await api('GET', '/webhooks');
    expect(body.webhooks.map((w: any) => w.url)).toEqual([allowed.url()]);
    await api('DELETE', `/webhooks/${body.webhooks[0].id}`);
  });

  it('refuses a name resolving to a non-allow-listed 127.0.0.1 when connecting: nothing reaches it', async () => {
    scheduler('a');
    const sneaky = `http://localhost:${refused.port}/hook`;
    const created = await api('POST', '/webhooks', { url: sneaky, events: ['task.cancelled'] });
    expect(created.status).toBe(200);
    const taskId = await cancelledTask();
    let row: any;
    await waitUntil(
      'the attempt refused',
      async () => Boolean((row = await deliveryRow(taskId))?.error),
      {
        timeoutMs: 20_000,
        state: () => `delivery ${JSON.stringify(row)}`,
      },
    );
    // The project reads this: it says what kind of address, not which name resolved to which.
    expect(row.error).toBe(
      'destination not allowed (a loopback address; see WEBHOOK_ALLOWED_HOSTS)',
    );
    let shown: any;
    await waitUntil(
      "the subscription's last_error",
      async () => (shown = (await api('GET', `/webhooks/${created.body.id}`)).body).last_error,
      { timeoutMs: 20_000, state: () => JSON.stringify(shown) },
    );
    expect(shown.last_error).toBe(row.error);
    expect(row.status_code).toBeNull();
    expect(refused.received).toEqual([]);
    await api('DELETE', `/webhooks/${created.body.id}`);
  });

  it('a scheduler killed (-9) while delivering does not lose the delivery: another one makes it', async () => {
    // The first request is held open until the process delivering it is gone; later ones get 200.
    allowed.reply = (_req, res, index) => {
      if (index === 0) return;
      res.end('ok');
    };
    const { body: webhook } = await api('POST', '/webhooks', {
      url: allowed.url(),
      events: ['task.cancelled'],
    });
    const taskId = await cancelledTask();
    await allowed.waitFor((all) => all.length >= 1, 20_000, 'the first attempt');
    const delivering = schedulers.find((child) => child.exitCode === null)!;
    delivering.kill('SIGKILL');
    await new Promise((resolve) => delivering.once('exit', resolve));
    const mid = await deliveryRow(taskId);
    expect(mid).toMatchObject({ state: 'pending', attempt: 1 });

    scheduler('b');
    await allowed.waitFor((all) => all.length >= 2, 30_000, 'the delivery after the kill');
    const [first, second] = allowed.received;
    expect(second.headers['webhook-id']).toBe(first.headers['webhook-id']);
    expect(second.body).toBe(first.body);
    expect(second.json).toMatchObject({ type: 'task.cancelled', data: { task_id: taskId } });
    let row: any;
    await waitUntil(
      'the delivery recorded',
      async () => (row = await deliveryRow(taskId)).state === 'delivered',
      { timeoutMs: 5000, state: () => `delivery ${JSON.stringify(row)}` },
    );
    expect(row).toMatchObject({ state: 'delivered', attempt: 2, status_code: 200 });
    // A fixed window, not a wait for something: no third attempt may arrive within it.
    await sleep(1000);
    expect(allowed.received).toHaveLength(2);
    await api('DELETE', `/webhooks/${webhook.id}`);
  });
});
