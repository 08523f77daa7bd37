import { createHash, randomBytes } from 'node:crypto';
import { Client } from 'pg';
import {
  AuthRegistry,
  PrivateImage,
  pushPrivateImage,
  startAuthRegistry,
} from './support/auth-registry';
import {
  call,
  e2e,
  newProject,
  queueTask,
  registerCode,
  taskLog,
  TestProject,
  waitForTask,
} from './support/kiln';

/** Private registries (issue 5): a project stores its login, workers pull with it. */
describe('private registries', () => {
  const run = randomBytes(3).toString('hex');
  let registry: AuthRegistry;
  let pushed: PrivateImage;
  let image: string;

  const credentials = (project: TestProject) => `/2/projects/${project.projectId}/credentials`;
  const ironAuth = (fields: Record<string, string>) => ({
    auth: Buffer.from(JSON.stringify(fields)).toString('base64'),
  });

  beforeAll(async () => {
    registry = await startAuthRegistry('kiln', `secret-${run}`);
    pushed = pushPrivateImage(registry, `private/job:${run}`, 'kiln-test/busybox:latest');
    image = pushed.image;
  }, 120_000);

  afterAll(async () => {
    pushed?.dispose();
    await registry?.stop();
  });

  // The wrong and missing logins go first: once an image is on the worker's host, it is there.
  it('wrong credentials end the task `error` at once, with a msg that says so', async () => {
    const project = await newProject('wrong-login');
    const added = await call('POST', credentials(project), {
      token: project.token,
      json: ironAuth({
        username: 'kiln',
        password: 'not-the-password',
        serveraddress: `http://${registry.host}`,
        email: 'x@example.com',
      }),
    });
    expect(added.status).toBe(200);
    expect(added.body).toEqual({ msg: 'Credentials added.' });
    await registerCode(project, 'job', { image, retries: 0 });
    const id = await queueTask(project, { code_name: 'job', payload: '{}' });
    const task = await waitForTask(project, id, undefined, 60_000);
    expect(task.status).toBe('error');
    expect(task.msg).toContain(`Could not pull image ${image}: access denied by the registry`);
    expect(task.msg).toContain(`the project's credentials for ${registry.host} were refused`);
  });

  it('no credentials: `error`, and the msg says how to store a login', async () => {
    const project = await newProject('no-login');
    await registerCode(project, 'job', { image });
    const id = await queueTask(project, { code_name: 'job', payload: '{}' });
    const task = await waitForTask(project, id, undefined, 60_000);
    expect(task.status).toBe('error');
    expect(task.msg).toContain(`store a login for ${registry.host} with POST /2/projects/`);
  });

  it('with the right credentials the task runs; they are stored sealed and listed without the password', async () => {
    const project = await newProject('login');
    const added = await call('POST', credentials(project), {
      token: project.token,
      json: {
        username: registry.username,
        password: registry.password,
        serveraddress: registry.host,
      },
    });
    expect(added.status).toBe(200);
    await registerCode(project, 'job', { image });
    const id = await queueTask(project, { code_name: 'job', payload: '{"private":1}' });
    const task = await waitForTask(project, id);
    expect(task).toMatchObject({ status: 'complete', msg: '' });
    expect((await taskLog(project, id)).text).toBe('{"private":1}\n');

    const listed = await call('GET', credentials(project), { token: project.token });
    expect(listed.status).toBe(200);
    expect(listed.body.credentials).toEqual([
      expect.objectContaining({ serveraddress: registry.host, username: 'kiln' }),
    ]);
    expect(listed.text).not.toContain(registry.password);

    const db = new Client({ connectionString: process.env.TEST_DATABASE_URL });
    await db.connect();
    try {
      const rows = await db.query('SELECT * FROM registry_credentials WHERE project_id = $1', [
        project.projectId,
      ]);
      expect(rows.rowCount).toBe(1);
      expect(JSON.stringify(rows.rows)).not.toContain(registry.password);
      // Sealed under the stack's key, named by its id (the first 8 hex of its SHA-256).
      const kid = createHash('sha256')
        .update(Buffer.from(e2e().env.KILN_CREDENTIALS_KEY, 'base64'))
        .digest('hex')
        .slice(0, 8);
      expect(rows.rows[0].secret).toMatch(new RegExp(`^v2\\.${kid}\\.`));
    } finally {
      await db.end();
    }
  });

  it('one login per registry: posting again replaces it; delete removes it', async () => {
    const project = await newProject('replace');
    for (const username of ['first', 'second']) {
      const res = await call('POST', credentials(project), {
        token: project.token,
        json: ironAuth({
          username,
          password: 'p',
          serveraddress: 'https://registry.example.com/v2/',
        }),
      });
      expect(res.status).toBe(200);
    }
    const hub = await call('POST', credentials(project), {
      token: project.token,
      json: ironAuth({
        username: 'hub',
        password: 'p',
        serveraddress: 'https://index.docker.io/v1/',
      }),
    });
    expect(hub.status).toBe(200);
    const listed = await call('GET', credentials(project), { token: project.token });
    expect(listed.body.credentials.map((c: any) => [c.serveraddress, c.username])).toEqual([
      ['docker.io', 'hub'],
      ['registry.example.com', 'second'],
    ]);
    const deleted = await call(
      'DELETE',
      `${credentials(project)}?serveraddress=registry.example.com`,
      {
        token: project.token,
      },
    );
    expect(deleted).toMatchObject({ status: 200, body: { msg: 'Deleted' } });
    const again = await call(
      'DELETE',
      `${credentials(project)}?serveraddress=registry.example.com`,
      {
        token: project.token,
      },
    );
    expect(again.status).toBe(404);
    const noParam = await call('DELETE', credentials(project), { token: project.token });
    expect(noParam.status).toBe(400);
    expect(noParam.body.msg).toMatch(/serveraddress is required/);
    const left = await call('GET', credentials(project), { token: project.token });
    expect(left.body.credentials.map((c: any) => c.serveraddress)).toEqual(['docker.io']);
  });

  it.each([
    [{ auth: 'not base64 json' }, /auth must be base64 of a JSON object/],
    [{ username: 'u', serveraddress: 'r.example.com' }, /password is required/],
    [{ username: 'u', password: 'p', serveraddress: 'http://bad host/' }, /not a registry host/],
    [{ username: 1, password: 'p' }, /username must be a string/],
  ])('refuses %j', async (body, message) => {
    const project = await newProject('bad-login');
    const res = await call('POST', `/2/projects/${project.projectId}/credentials`, {
      token: project.token,
      json: body,
    });
    expect(res.status).toBe(400);
    expect(res.body.msg).toMatch(message);
    const listed = await call('GET', `/2/projects/${project.projectId}/credentials`, {
      token: project.token,
    });
    expect(listed.body.credentials).toEqual([]);
  });
});
