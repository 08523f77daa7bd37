import { execFile } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { withClient } from './support/database';
import { TEST_IMAGE, waitUntil } from './support/kiln';
import { LOG_DIR, ROOT } from './support/processes';
import { OwnStack } from './support/own-stack';
import { Receiver, validSignatures } from './support/receiver';

const run = promisify(execFile);

/**
 * Secrets at rest (issue 14.6) on a stack of this suite's own, so that its key can be rotated:
 * webhook, per-task webhook and trigger HMAC secrets and code env_vars are sealed in the
 * database under the credentials key, everything still works through them, `npm run reseal`
 * moves them to a new key, and none of them (nor a token) appears in the processes' logs.
 */
describe('secrets at rest', () => {
  const stack = new OwnStack('secrets', 60);
  const oldKey = randomBytes(32).toString('base64');
  const newKey = randomBytes(32).toString('base64');
  const kid = (key: string) =>
    createHash('sha256').update(Buffer.from(key, 'base64')).digest('hex').slice(0, 8);
  const hooks = new Receiver();
  const failing = new Receiver((_req, res) => {
    res.statusCode = 500;
    res.end('no');
  });
  const envSecret = `env-${randomBytes(12).toString('hex')}`;
  const hmacSecret = `hmac-${randomBytes(12).toString('hex')}`;

  let a: { id: string; token: string };
  let b: { id: string; token: string };
  let codeId: string;
  let webhook: { id: string; secret: string };
  let taskSecret: string;
  let trigger: { id: string; url: string; secret: string };

  const api = (method: string, path: string, json?: unknown, project = a) =>
    stack.request(method, `/2/projects/${project.id}${path}`, json, project.token);

  async function startAll(env: Record<string, string>): Promise<void> {
    await stack.startApi(env);
    await stack.startWorker(env);
    stack.start('scheduler', env);
  }

  /** Every sealed column's values (non-empty), as stored. */
  async function storedSecrets(): Promise<string[]> {
    return withClient(stack.database.url, async (db) => {
      const rows = await db.query<{ v: string }>(
        `SELECT secret AS v FROM webhooks UNION ALL
         SELECT previous_secret FROM webhooks WHERE previous_secret IS NOT NULL UNION ALL
         SELECT secret FROM project_webhook_secrets UNION ALL
         SELECT hmac_secret FROM code_triggers WHERE hmac_secret IS NOT NULL UNION ALL
         SELECT env_vars::text FROM codes WHERE env_vars <> '{}' UNION ALL
         SELECT env_vars::text FROM code_revisions WHERE env_vars <> '{}'`,
      );
      return rows.rows.map((row) => row.v);
    });
  }

  /** A task of the code runs `env`: its log shows the code's variable. */
  async function taskSeesEnv(): Promise<void> {
    const queued = await api('POST', '/tasks', {
      tasks: [{ code_name: 'envy', payload: '{}', webhook: hooks.url('/task') }],
    });
    expect(queued.status).toBe(200);
    const taskId = queued.body.tasks[0].id as string;
    let task: any;
    await waitUntil(
      `task ${taskId}`,
      async () =>
        ['complete', 'error'].includes((task = (await api('GET', `/tasks/${taskId}`)).body).status),
      { timeoutMs: 90_000 },
    );
    expect(task.status).toBe('complete');
    const log = await api('GET', `/tasks/${taskId}/log`);
    expect(String(log.body)).toContain(`SECRET_VAR=${envSecret}`);
    // The subscription's delivery and the task's own webhook, each signed with its secret.
    const got = await hooks.waitFor(
      (all) =>
        all.some((r) => r.path === '/hook' && r.json?.data?.task_id === taskId) &&
        all.some((r) => r.path === '/task' && r.body.includes(taskId)),
      60_000,
    );
    const subscribed = got.find((r) => r.path === '/hook' && r.json?.data?.task_id === taskId)!;
    expect(validSignatures(subscribed, webhook.secret)).toBe(1);
    const own = got.find((r) => r.path === '/task' && r.body.includes(taskId))!;
    expect(validSignatures(own, taskSecret)).toBe(1);
  }

  /** The trigger takes a body signed with its HMAC secret, and refuses another signature. */
  async function triggerChecksHmac(): Promise<void> {
    const body = '{"ref":"main"}';
    const sign = (key: string) => `sha256=${createHmac('sha256', key).update(body).digest('hex')}`;
    const fire = (signature: string) =>
      fetch(trigger.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature },
        body,
      });
    expect((await fire(sign('not-it'))).status).toBe(401);
    expect((await fire(sign(hmacSecret))).status).toBe(200);
  }

  beforeAll(async () => {
    await hooks.start();
    await failing.start();
    await stack.create({
      KILN_CREDENTIALS_KEY: oldKey,
      WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
    });
    await startAll({});
    a = await stack.newProject('secrets-a');
    b = await stack.newProject('secrets-b');
    const code = await api('POST', '/codes', {
      name: 'envy',
      image: TEST_IMAGE,
      command: 'env',
      env_vars: { SECRET_VAR: envSecret, PLAIN: 'x' },
    });
    expect(code.status).toBe(200);
    codeId = code.body.id;
    const created = await api('POST', '/webhooks', {
      url: hooks.url('/hook'),
      events: ['task.complete'],
    });
    expect(created.status).toBe(200);
    webhook = created.body;
    // A subscription that always fails: its errors are logged by the dispatcher.
    expect(
      (await api('POST', '/webhooks', { url: failing.url('/fail'), events: ['task.complete'] }))
        .status,
    ).toBe(200);
    taskSecret = (await api('GET', '/webhooks/task_secret')).body.secret;
    expect(taskSecret).toMatch(/^whsec_/);
    const made = await api('POST', `/codes/${codeId}/triggers`, {
      hmac_header: 'X-Hub-Signature-256',
      hmac_secret: hmacSecret,
      hmac_prefix: 'sha256=',
    });
    expect(made.status).toBe(200);
    trigger = made.body;
  }, 180_000);

  afterAll(async () => {
    await stack.close();
    await hooks.close();
    await failing.close();
  });

  const plainSecrets = () => [envSecret, hmacSecret, webhook.secret, taskSecret];

  it('the database holds every secret sealed under the key, none in plain text; everything works through them', async () => {
    await taskSeesEnv();
    await triggerChecksHmac();
    const stored = await storedSecrets();
    // webhooks (2), project secret, trigger, code and its revision.
    expect(stored).toHaveLength(6);
    for (const value of stored) {
      expect(value).toMatch(new RegExp(`^"?v2\\.${kid(oldKey)}\\.`));
      for (const secret of plainSecrets()) expect(value).not.toContain(secret);
      for (const secret of plainSecrets()) {
        expect(value).not.toContain(Buffer.from(secret).toString('base64'));
      }
    }
    // The API answers as before: the code shows its variables.
    const code = await api('GET', `/codes/${codeId}`);
    expect(code.body.env_vars).toEqual({ SECRET_VAR: envSecret, PLAIN: 'x' });
    const revisions = await api('GET', `/codes/${codeId}/revisions`);
    expect(revisions.body.revisions[0].env_vars).toEqual({ SECRET_VAR: envSecret, PLAIN: 'x' });
  }, 180_000);

  it("another project reads none of them: not the code's env_vars, the subscriptions, the triggers", async () => {
    for (const path of [
      `/codes/${codeId}`,
      `/codes/${codeId}/revisions`,
      `/codes/${codeId}/triggers`,
      `/webhooks/${webhook.id}`,
    ]) {
      const res = await stack.request('GET', `/2/projects/${a.id}${path}`, undefined, b.token);
      expect(res.status).toBe(401);
      const own = await api('GET', path, undefined, b);
      expect([404, 400]).toContain(own.status);
      for (const secret of plainSecrets()) {
        expect(JSON.stringify(res.body) + JSON.stringify(own.body)).not.toContain(secret);
      }
    }
    const theirs = await api('GET', '/webhooks/task_secret', undefined, b);
    expect(theirs.body.secret).toMatch(/^whsec_/);
    expect(theirs.body.secret).not.toBe(taskSecret);
  }, 60_000);

  it('rotation: with the new key and the old one in KILN_CREDENTIALS_OLD_KEYS, reseal moves everything (and legacy plain values) to the new key', async () => {
    // A value stored in plain text by an older Kiln: read as it is, sealed by reseal.
    const legacy = `whsec_${randomBytes(24).toString('base64')}`;
    const legacyHook = await api('POST', '/webhooks', { url: hooks.url('/legacy') });
    await withClient(stack.database.url, (db) =>
      db.query(`UPDATE webhooks SET secret = $2 WHERE id = $1`, [legacyHook.body.id, legacy]),
    );
    await stack.stopProcesses();
    const env = { ...stack.env, KILN_CREDENTIALS_KEY: newKey, KILN_CREDENTIALS_OLD_KEYS: oldKey };
    const first = await run('node', ['dist/libs/database/src/reseal.js'], { cwd: ROOT, env });
    expect(first.stdout).toMatch(new RegExp(`resealed 8 secrets under key ${kid(newKey)}`));
    const again = await run('node', ['dist/libs/database/src/reseal.js'], { cwd: ROOT, env });
    expect(again.stdout).toContain(`every secret is sealed under key ${kid(newKey)}`);
    const stored = await storedSecrets();
    expect(stored).toHaveLength(8);
    for (const value of stored) expect(value).toMatch(new RegExp(`^"?v2\\.${kid(newKey)}\\.`));
    expect(stored.join()).not.toContain(legacy.slice(6));

    // Without the old key at all, everything still works.
    await startAll({ KILN_CREDENTIALS_KEY: newKey });
    await taskSeesEnv();
    await triggerChecksHmac();
    const code = await api('GET', `/codes/${codeId}`);
    expect(code.body.env_vars).toEqual({ SECRET_VAR: envSecret, PLAIN: 'x' });
    // The legacy subscription signs with its (now sealed) secret.
    const queued = await api('POST', '/tasks', { tasks: [{ code_name: 'envy', payload: '{}' }] });
    const taskId = queued.body.tasks[0].id as string;
    const got = await hooks.waitFor(
      (all) => all.some((r) => r.path === '/legacy' && r.json?.data?.task_id === taskId),
      90_000,
    );
    const delivered = got.find((r) => r.path === '/legacy' && r.json?.data?.task_id === taskId)!;
    expect(validSignatures(delivered, legacy)).toBe(1);
  }, 300_000);

  it('no token, secret or Authorization header appears in any log line', async () => {
    // Requests that fail, with tokens: a wrong one, an admin one on a missing route, a bad body.
    await stack.request('GET', `/2/projects/${a.id}/codes`, undefined, `kiln_${'x'.repeat(30)}`);
    await api('POST', '/tasks', { tasks: 'nope' });
    await stack.request('GET', '/2/nowhere');
    // The failing subscription has been answered 500 by now (a task completed in each test).
    await waitUntil('a failed delivery to /fail', async () => failing.received.length > 0, {
      timeoutMs: 30_000,
    });
    const logs = readdirSync(LOG_DIR)
      .filter((name) => name.startsWith('secrets-'))
      .map((name) => readFileSync(join(LOG_DIR, name), 'utf8'));
    expect(logs.length).toBeGreaterThanOrEqual(3);
    const text = logs.join('\n');
    expect(text.length).toBeGreaterThan(0);
    for (const secret of [
      ...plainSecrets(),
      a.token,
      b.token,
      stack.adminToken,
      trigger.secret,
      oldKey,
      newKey,
    ]) {
      expect(text).not.toContain(secret);
    }
    expect(text).not.toMatch(/authorization:\s*\S+/i);
  }, 60_000);
});
