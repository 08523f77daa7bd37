import { Client } from 'pg';
import { openApiDocument } from '../apps/api/src/openapi/document';
import { call, e2e, newProject, registerCode, TestProject } from './support/kiln';

describe('auth and token isolation', () => {
  let a: TestProject;
  let b: TestProject;

  beforeAll(async () => {
    [a, b] = [await newProject('project a'), await newProject('project b')];
    await registerCode(a, 'secret-code');
  });

  it('accepts the token as `OAuth`, `Bearer` and `?oauth=`', async () => {
    for (const auth of ['oauth', 'bearer', 'query'] as const) {
      const res = await call('GET', `/2/projects/${a.projectId}`, { token: a.token, auth });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: a.projectId, name: 'project a' });
    }
  });

  // The answer check of call() holds every other answer to this document (test/support/answer-check.ts).
  it('serves the OpenAPI document to anyone, the one the suites check answers against', async () => {
    const res = await call('GET', '/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.body).toEqual(JSON.parse(JSON.stringify(openApiDocument())));
    expect(Object.keys(res.body.paths)).toContain('/2/projects/{projectId}/tasks/{taskId}');
  });

  it('refuses a missing or wrong token with 401 {"msg"}', async () => {
    for (const token of [undefined, 'wrong-token', a.token.slice(0, -1)]) {
      const res = await call('GET', `/2/projects/${a.projectId}/codes`, { token });
      expect(res.status).toBe(401);
      expect(res.body.msg).toMatch(/token/i);
    }
  });

  it("refuses one project's token on another project's paths", async () => {
    const codes = await call('GET', `/2/projects/${a.projectId}/codes`, { token: a.token });
    const codeId = codes.body.codes[0].id;
    const attempts: [string, string, unknown?][] = [
      ['GET', `/2/projects/${a.projectId}`],
      ['GET', `/2/projects/${a.projectId}/codes`],
      ['GET', `/2/projects/${a.projectId}/codes/${codeId}`],
      [
        'POST',
        `/2/projects/${a.projectId}/codes`,
        { name: 'intruder', image: 'kiln-test/busybox' },
      ],
      ['POST', `/2/projects/${a.projectId}/tasks`, { tasks: [{ code_name: 'secret-code' }] }],
      ['GET', `/2/projects/${a.projectId}/tasks`],
    ];
    for (const [method, path, json] of attempts) {
      const res = await call(method, path, { token: b.token, json });
      expect(res.status).toBe(401);
      expect(res.body.msg).toMatch(/token/i);
    }
    // B's own view holds nothing of A's.
    const own = await call('GET', `/2/projects/${b.projectId}/codes/${codeId}`, { token: b.token });
    expect(own.status).toBe(404);
    const tasks = await call('GET', `/2/projects/${a.projectId}/tasks`, { token: a.token });
    expect(tasks.body.tasks).toEqual([]);
  });

  it("only the admin token creates projects; another project's token cannot issue tokens; tokens are shown once and stored hashed", async () => {
    const denied = await call('POST', '/2/projects', { token: a.token, json: { name: 'nope' } });
    expect(denied.status).toBe(403);
    expect(denied.body.msg).toMatch(/admin/);
    // A project's manage token issues its own project's tokens (test/tokens.e2e-spec.ts), not
    // another's.
    const deniedToken = await call('POST', `/2/projects/${a.projectId}/tokens`, {
      token: b.token,
      json: {},
    });
    expect(deniedToken.status).toBe(401);
    const issued = await call('POST', `/2/projects/${a.projectId}/tokens`, {
      token: e2e().adminToken,
      json: { name: 'ci' },
    });
    expect(issued.status).toBe(200);
    expect(issued.body.token).toEqual(expect.any(String));
    const works = await call('GET', `/2/projects/${a.projectId}`, { token: issued.body.token });
    expect(works.status).toBe(200);
    const db = new Client({ connectionString: process.env.TEST_DATABASE_URL });
    await db.connect();
    try {
      const rows = await db.query('SELECT * FROM tokens WHERE project_id = $1', [a.projectId]);
      expect(rows.rowCount).toBe(2);
      expect(JSON.stringify(rows.rows)).not.toContain(issued.body.token);
      expect(JSON.stringify(rows.rows)).not.toContain(a.token);
    } finally {
      await db.end();
    }
    const missing = await call('POST', `/2/projects/${'0'.repeat(24)}/tokens`, {
      token: e2e().adminToken,
      json: {},
    });
    expect(missing.status).toBe(404);
  });

  it('lists only the projects a token can see', async () => {
    const own = await call('GET', '/2/projects', { token: a.token });
    expect(own.body.projects.map((p: { id: string }) => p.id)).toEqual([a.projectId]);
    const all = await call('GET', '/2/projects', { token: e2e().adminToken });
    expect(all.body.projects.map((p: { id: string }) => p.id)).toEqual(
      expect.arrayContaining([a.projectId, b.projectId]),
    );
  });
});
