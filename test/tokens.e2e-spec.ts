import { randomBytes, createHash } from 'node:crypto';
import { withClient } from './support/database';
import {
  Answer,
  call,
  e2e,
  newProject,
  registerCode,
  TestProject,
  waitForTask,
  waitUntil,
} from './support/kiln';
import { OwnStack, StackAnswer } from './support/own-stack';
import { sleep, waitForHealthy } from './support/processes';

const TOKEN_FIELDS = ['created_at', 'expires_at', 'id', 'last_used_at', 'name', 'role'];

/** A token of `project` with `role` (and `expires_at`), made by the project's manage token. */
async function issue(
  project: TestProject,
  role: string,
  extra: Record<string, unknown> = {},
): Promise<{ id: string; token: string }> {
  const res = await call('POST', `/2/projects/${project.projectId}/tokens`, {
    token: project.token,
    json: { name: `${role} token`, role, ...extra },
  });
  expect(res.status).toBe(200);
  return { id: res.body.id, token: res.body.token };
}

async function listTokens(project: TestProject, token = project.token): Promise<Answer> {
  return call('GET', `/2/projects/${project.projectId}/tokens`, { token });
}

/** `{"msg"}` of a 403 that names the token's role and the one needed. */
function expectForbidden(res: Answer, role: string, needed: string): void {
  expect(res.status).toBe(403);
  expect(res.body.msg).toMatch(new RegExp(`role is ${role}; this action needs ${needed}`));
}

describe('tokens with a role and a lifecycle', () => {
  let a: TestProject;
  let b: TestProject;
  let done: string; // a task of A that has run

  beforeAll(async () => {
    [a, b] = [await newProject('tokens a'), await newProject('tokens b')];
    await registerCode(a, 'hello');
    const queued = await call('POST', `/2/projects/${a.projectId}/tasks`, {
      token: a.token,
      json: { tasks: [{ code_name: 'hello', payload: '{"hi":1}' }] },
    });
    done = queued.body.tasks[0].id;
    expect((await waitForTask(a, done)).status).toBe('complete');
  });

  it('lists, creates and revokes tokens; the secret is shown once, prefixed kiln_, never listed', async () => {
    const before = await listTokens(a);
    expect(before.status).toBe(200);
    expect(before.body.tokens).toHaveLength(1);
    expect(before.body.tokens[0]).toMatchObject({ role: 'manage', expires_at: null });
    const expiresAt = new Date(Date.now() + 3600_000);
    const created = await call('POST', `/2/projects/${a.projectId}/tokens`, {
      token: a.token,
      json: { name: 'dashboard', role: 'read', expires_at: expiresAt.toISOString() },
    });
    expect(created.status).toBe(200);
    expect(created.body).toEqual({
      msg: 'Token created',
      id: expect.stringMatching(/^[0-9a-f]{24}$/),
      project_id: a.projectId,
      token: expect.stringMatching(/^kiln_[A-Za-z0-9_][A-Za-z0-9_-]{31}$/),
      name: 'dashboard',
      role: 'read',
      created_at: expect.any(String),
      last_used_at: null,
      expires_at: expiresAt.toISOString(),
    });
    const listed = await listTokens(a);
    expect(listed.body.tokens).toHaveLength(2);
    const entry = listed.body.tokens.find((t: { id: string }) => t.id === created.body.id);
    expect(Object.keys(entry).sort()).toEqual(TOKEN_FIELDS);
    expect(entry).toEqual({
      id: created.body.id,
      name: 'dashboard',
      role: 'read',
      created_at: created.body.created_at,
      last_used_at: null,
      expires_at: expiresAt.toISOString(),
    });
    expect(listed.text).not.toContain(created.body.token);
    expect(listed.text).not.toContain(a.token);
    // The admin token lists and issues too.
    const byAdmin = await listTokens(a, e2e().adminToken);
    expect(byAdmin.body.tokens.map((t: { id: string }) => t.id)).toContain(created.body.id);

    const works = await call('GET', `/2/projects/${a.projectId}/tasks`, {
      token: created.body.token,
    });
    expect(works.status).toBe(200);
    const revoked = await call('DELETE', `/2/projects/${a.projectId}/tokens/${created.body.id}`, {
      token: a.token,
    });
    expect(revoked).toMatchObject({ status: 200, body: { msg: 'Revoked' } });
    const refused = await call('GET', `/2/projects/${a.projectId}/tasks`, {
      token: created.body.token,
    });
    expect(refused.status).toBe(401);
    expect(refused.body.msg).toMatch(/token/i);
    const after = await listTokens(a);
    expect(after.body.tokens.map((t: { id: string }) => t.id)).toEqual(
      before.body.tokens.map((t: { id: string }) => t.id),
    );
    const again = await call('DELETE', `/2/projects/${a.projectId}/tokens/${created.body.id}`, {
      token: a.token,
    });
    expect(again).toMatchObject({ status: 404, body: { msg: 'Token not found' } });
  });

  it('a read token reads tasks, logs, codes and schedules, and can change nothing', async () => {
    const { token } = await issue(a, 'read');
    const base = `/2/projects/${a.projectId}`;
    for (const path of [
      `${base}/tasks`,
      `${base}/tasks/${done}`,
      `${base}/codes`,
      `${base}/schedules`,
      `${base}/webhooks`,
      base,
    ]) {
      expect({ path, status: (await call('GET', path, { token })).status }).toEqual({
        path,
        status: 200,
      });
    }
    const log = await call('GET', `${base}/tasks/${done}/log`, { token });
    expect(log).toMatchObject({ status: 200, text: '{"hi":1}\n' });
    const writes: [string, string, unknown][] = [
      ['POST', `${base}/tasks`, { tasks: [{ code_name: 'hello' }] }],
      ['POST', `${base}/tasks/${done}/retry`, {}],
      ['POST', `${base}/tasks/${done}/cancel`, {}],
      ['POST', `${base}/tasks/${done}/progress`, { percent: 5 }],
    ];
    for (const [method, path, json] of writes) {
      expectForbidden(await call(method, path, { token, json }), 'read', 'queue or manage');
    }
    expectForbidden(
      await call('POST', `${base}/codes`, { token, json: { name: 'x', image: 'busybox' } }),
      'read',
      'manage',
    );
    expectForbidden(await listTokens(a, token), 'read', 'manage');
    expectForbidden(await call('GET', `${base}/webhooks/task_secret`, { token }), 'read', 'manage');
    const tasks = await call('GET', `${base}/tasks`, { token: a.token });
    expect(tasks.body.tasks).toHaveLength(1); // nothing was queued
  });

  it('a queue token queues, cancels, retries and sets progress, but registers and manages nothing', async () => {
    const { token } = await issue(a, 'queue');
    const base = `/2/projects/${a.projectId}`;
    const queued = await call('POST', `${base}/tasks`, {
      token,
      json: { tasks: [{ code_name: 'hello', delay: 600 }] },
    });
    expect(queued.status).toBe(200);
    const id = queued.body.tasks[0].id;
    const progress = await call('POST', `${base}/tasks/${id}/progress`, {
      token,
      json: { percent: 40, msg: 'halfway' },
    });
    expect(progress).toMatchObject({ status: 200, body: { msg: 'Progress set' } });
    expect((await call('GET', `${base}/tasks/${id}`, { token })).body).toMatchObject({
      percent: 40,
      msg: 'halfway',
    });
    const cancelled = await call('POST', `${base}/tasks/${id}/cancel`, { token, json: {} });
    expect(cancelled).toMatchObject({ status: 200, body: { msg: 'Cancelled' } });
    const retried = await call('POST', `${base}/tasks/${done}/retry`, {
      token,
      json: { delay: 600 },
    });
    expect(retried).toMatchObject({ status: 200, body: { msg: 'Queued up' } });
    const retry = retried.body.tasks[0].id;
    expect((await call('GET', `${base}/tasks/${retry}`, { token })).body).toMatchObject({
      original_task_id: done,
      status: 'queued',
    });
    await call('POST', `${base}/tasks/${retry}/cancel`, { token, json: {} });

    const refused: [string, string, unknown][] = [
      ['POST', `${base}/codes`, { name: 'intruder', image: 'kiln-test/busybox:latest' }],
      [
        'POST',
        `${base}/schedules`,
        { schedules: [{ code_name: 'hello', payload: '{}', run_every: 60 }] },
      ],
      ['POST', `${base}/webhooks`, { url: 'http://127.0.0.1:9/hook' }],
      ['POST', `${base}/tokens`, { role: 'manage' }],
      ['POST', `${base}/tokens`, { role: 'read' }],
      ['GET', `${base}/tokens`, undefined],
      ['DELETE', `${base}/tokens/${'0'.repeat(24)}`, undefined],
    ];
    for (const [method, path, json] of refused) {
      expectForbidden(await call(method, path, { token, json }), 'queue', 'manage');
    }
    const codes = await call('GET', `${base}/codes`, { token });
    expect(codes.body.codes.map((c: { name: string }) => c.name)).toEqual(['hello']);
    expect((await call('GET', `${base}/schedules`, { token })).body.schedules).toEqual([]);
    expect((await call('GET', `${base}/webhooks`, { token })).body.webhooks).toEqual([]);
  });

  it("another project's manage token can neither list nor revoke A's tokens", async () => {
    const target = await issue(a, 'read');
    const listed = await listTokens(a, b.token);
    expect(listed.status).toBe(401);
    expect(listed.body.msg).toMatch(/token/i);
    const direct = await call('DELETE', `/2/projects/${a.projectId}/tokens/${target.id}`, {
      token: b.token,
    });
    expect(direct.status).toBe(401);
    // Through B's own path: A's token id is unknown there, and nothing changes.
    const viaB = await call('DELETE', `/2/projects/${b.projectId}/tokens/${target.id}`, {
      token: b.token,
    });
    expect(viaB).toMatchObject({ status: 404, body: { msg: 'Token not found' } });
    const still = await call('GET', `/2/projects/${a.projectId}/tasks`, { token: target.token });
    expect(still.status).toBe(200);
    expect((await listTokens(a)).body.tokens.map((t: { id: string }) => t.id)).toContain(target.id);
    // B's own list holds only B's token.
    const own = await listTokens(b);
    expect(own.body.tokens).toHaveLength(1);
  });

  it('bad input is a 4xx {"msg"} and writes nothing', async () => {
    const base = `/2/projects/${a.projectId}`;
    const before = (await listTokens(a)).body.tokens;
    const cases: [string, string, unknown, number, RegExp][] = [
      ['POST', `${base}/tokens`, { role: 'admin' }, 400, /role must be one of read, queue, manage/],
      ['POST', `${base}/tokens`, { role: '' }, 400, /role must be one of/],
      ['POST', `${base}/tokens`, { role: ['read'] }, 400, /role must be a string/],
      ['POST', `${base}/tokens`, { expires_at: '2001-01-01T00:00:00Z' }, 400, /in the future/],
      ['POST', `${base}/tokens`, { expires_at: 'next week' }, 400, /RFC3339/],
      ['POST', `${base}/tokens`, { expires_at: '2030-02-30T00:00:00Z' }, 400, /RFC3339/],
      ['POST', `${base}/tokens`, { expires_at: 1893456000 }, 400, /expires_at must be a string/],
      ['POST', `${base}/tokens`, { name: 'x'.repeat(256) }, 413, /name/],
      ['POST', `${base}/tokens`, [], 400, /JSON object/],
      ['DELETE', `${base}/tokens/nope`, undefined, 400, /not a valid id/],
      ['DELETE', `${base}/tokens/${'A'.repeat(24)}`, undefined, 400, /not a valid id/],
      ['DELETE', `${base}/tokens/${'0'.repeat(24)}`, undefined, 404, /Token not found/],
    ];
    for (const [method, path, json, status, msg] of cases) {
      const res = await call(method, path, { token: a.token, json });
      expect({ path, json, status: res.status }).toEqual({ path, json, status });
      expect(res.body.msg).toMatch(msg);
    }
    const admin = e2e().adminToken;
    // The admin reaches the id check (a project token is refused first: not its project).
    const badProject = await call('GET', '/2/projects/xyz/tokens', { token: admin });
    expect(badProject).toMatchObject({
      status: 400,
      body: { msg: expect.stringMatching(/not a valid id/) },
    });
    const missing = await call('POST', `/2/projects/${'0'.repeat(24)}/tokens`, {
      token: admin,
      json: {},
    });
    expect(missing).toMatchObject({ status: 404, body: { msg: 'Project not found' } });
    expect((await listTokens(a)).body.tokens).toEqual(before);
  });

  it('an expired token gets 401, cached or not', async () => {
    const expiresAt = new Date(Date.now() + 2500);
    const { token } = await issue(a, 'read', { expires_at: expiresAt.toISOString() });
    const path = `/2/projects/${a.projectId}/tasks`;
    expect((await call('GET', path, { token })).status).toBe(200);
    // Keeps the token in the API's cache up to its expiry; the last call leaves 300 ms for its
    // answer, so that no call straddles the expiry.
    while (Date.now() < expiresAt.getTime() - 300) {
      expect((await call('GET', path, { token })).status).toBe(200);
      await sleep(100);
    }
    // A fixed pause, nothing to poll for: past the expiry by a little.
    await sleep(expiresAt.getTime() + 50 - Date.now());
    const expired = await call('GET', path, { token });
    expect(expired.status).toBe(401);
    expect(expired.body.msg).toBe('The OAuth token has expired');
  });

  it('a token cannot make one that outlives it: an expiring or leaked token mints no permanent one', async () => {
    const expiresAt = new Date(Date.now() + 3_600_000);
    const { token } = await issue(a, 'manage', { expires_at: expiresAt.toISOString() });
    const path = `/2/projects/${a.projectId}/tokens`;
    const before = (await listTokens(a)).body.tokens.length;
    for (const json of [{}, { expires_at: new Date(expiresAt.getTime() + 1000).toISOString() }]) {
      const refused = await call('POST', path, { token, json });
      expect(refused.status).toBe(400);
      expect(refused.body.msg).toBe(
        `expires_at must be at most ${expiresAt.toISOString()}, when the token making it expires`,
      );
    }
    expect((await listTokens(a)).body.tokens).toHaveLength(before);
    const shorter = new Date(expiresAt.getTime() - 60_000).toISOString();
    const made = await call('POST', path, { token, json: { role: 'read', expires_at: shorter } });
    expect(made.status).toBe(200);
    expect(made.body.expires_at).toBe(shorter);
    // The admin's tokens have no such bound.
    const byAdmin = await call('POST', path, { token: e2e().adminToken, json: {} });
    expect(byAdmin.status).toBe(200);
    expect(byAdmin.body.expires_at).toBeNull();
  });

  it('last_used_at is recorded on use, and not rewritten on every request', async () => {
    const { id, token } = await issue(a, 'read');
    const path = `/2/projects/${a.projectId}/tasks`;
    const before = Date.now();
    expect((await call('GET', path, { token })).status).toBe(200);
    const lastUsed = async () =>
      (await listTokens(a)).body.tokens.find((t: { id: string }) => t.id === id).last_used_at;
    let first: string | null = null;
    await waitUntil('last_used_at recorded', async () => Boolean((first = await lastUsed())), {
      timeoutMs: 5000,
    });
    expect(first).not.toBeNull();
    expect(Math.abs(new Date(first!).getTime() - before)).toBeLessThan(5000);
    for (let i = 0; i < 20; i++) expect((await call('GET', path, { token })).status).toBe(200);
    // A fixed window, not a wait for something: last_used_at may not be rewritten within it.
    await sleep(300);
    expect(await lastUsed()).toBe(first);
  });

  it('a token made before roles (no role column value, no kiln_ prefix) is a working manage token', async () => {
    const secret = randomBytes(24).toString('base64url').replace(/^-/, 'x');
    const id = randomBytes(12).toString('hex');
    await withClient(process.env.TEST_DATABASE_URL!, (db) =>
      db.query(`INSERT INTO tokens (id, project_id, token_hash, name) VALUES ($1, $2, $3, 'old')`, [
        id,
        a.projectId,
        createHash('sha256').update(secret).digest('hex'),
      ]),
    );
    const listed = (await listTokens(a)).body.tokens.find((t: { id: string }) => t.id === id);
    expect(listed).toMatchObject({ name: 'old', role: 'manage', expires_at: null });
    const made = await call('POST', `/2/projects/${a.projectId}/tokens`, {
      token: secret,
      json: { role: 'read' },
    });
    expect(made.status).toBe(200);
  });
});

/**
 * Two API replicas on a database and Redis prefix of their own: a token revoked through one stops
 * working on both within a second (each remembers tokens it has seen; the revocation reaches the
 * other over Redis).
 */
describe('revocation across API replicas', () => {
  const stack = new OwnStack('tokens', 40);
  let second: string;

  beforeAll(async () => {
    await stack.create();
    await stack.startApi();
    const port = stack.port + 1;
    stack.start('api', { KILN_API_PORT: String(port) }, 'api-2');
    second = `http://127.0.0.1:${port}`;
    await waitForHealthy(`${second}/healthz`);
  });

  afterAll(async () => {
    await stack.close();
  });

  async function status(url: string, path: string, token: string): Promise<number> {
    const res = await fetch(`${url}${path}`, { headers: { authorization: `OAuth ${token}` } });
    await res.arrayBuffer();
    return res.status;
  }

  it('a revoked token gets 401 on both replicas within 1 s', async () => {
    const project = await stack.newProject('replicas');
    const path = `/2/projects/${project.id}/tasks`;
    const urls = [stack.url, second];
    for (const via of [0, 1]) {
      const made: StackAnswer = await stack.request(
        'POST',
        `/2/projects/${project.id}/tokens`,
        { role: 'read' },
        project.token,
      );
      expect(made.status).toBe(200);
      const token = made.body.token as string;
      // Both replicas have it in their cache.
      for (const url of urls) expect(await status(url, path, token)).toBe(200);
      const revoke = await fetch(`${urls[via]}/2/projects/${project.id}/tokens/${made.body.id}`, {
        method: 'DELETE',
        headers: { authorization: `OAuth ${project.token}` },
      });
      expect(revoke.status).toBe(200);
      const revokedAt = Date.now();
      const refusedAfter: number[] = [];
      for (const url of urls) {
        await waitUntil(`401 on ${url}`, async () => (await status(url, path, token)) === 401, {
          timeoutMs: revokedAt + 1000 - Date.now(),
          intervalMs: 20,
        });
        refusedAfter.push(Date.now() - revokedAt);
      }
      expect(Math.max(...refusedAfter)).toBeLessThan(1000);
      // And it stays refused: a fixed window, not a wait for something.
      await sleep(1200);
      for (const url of urls) expect(await status(url, path, token)).toBe(401);
    }
    // The project's manage token still works on both.
    for (const url of urls) expect(await status(url, path, project.token)).toBe(200);
  });
});
