import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import {
  AuthRegistry,
  PrivateImage,
  pushPrivateImage,
  startAuthRegistry,
} from './support/auth-registry';
import { buildTestImage, docker } from './support/images';
import {
  call,
  newProject,
  queueTask,
  registerCode,
  taskLog,
  TEST_IMAGE,
  TestProject,
  waitForTask,
} from './support/kiln';

/**
 * Issue 13: two projects on one stack. What a project may run is decided per (project, image) on
 * every task: an image already on the worker's engine grants nothing.
 */
describe('image access between projects', () => {
  const registry = process.env.REGISTRY_URL!;
  const registryPort = registry.split(':').pop()!;
  const run = randomBytes(3).toString('hex');
  const tag = `kiln-test13/access-${run}:a`;
  let dir: string;
  let a: TestProject;
  let b: TestProject;
  /** A's upload, as its revision records it: `<registry>/kiln/<A>/job@sha256:…`. */
  let upload: string;

  const register = (project: TestProject, name: string, image: string) =>
    call('POST', `/2/projects/${project.projectId}/codes`, {
      token: project.token,
      json: { name, image },
    });

  const codeNames = async (project: TestProject): Promise<string[]> => {
    const res = await call('GET', `/2/projects/${project.projectId}/codes`, {
      token: project.token,
    });
    return res.body.codes.map((code: { name: string }) => code.name);
  };

  const inspect = (ref: string): { Id: string } =>
    (JSON.parse(docker(['image', 'inspect', ref])) as { Id: string }[])[0];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kiln-test13-'));
    buildTestImage(tag, `a-${run}`);
    docker(['save', '-o', join(dir, 'a.tar'), tag]);
    a = await newProject('access-a');
    b = await newProject('access-b');
    const res = await call('POST', `/2/projects/${a.projectId}/codes/job/image`, {
      token: a.token,
      body: readFileSync(join(dir, 'a.tar')),
      headers: { 'content-type': 'application/x-tar' },
    });
    expect(res.status).toBe(200);
    upload = res.body.image;
    expect(upload).toMatch(new RegExp(`^${registry}/kiln/${a.projectId}/job@sha256:[0-9a-f]{64}$`));
  }, 120_000);

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    for (const ref of [tag, upload]) {
      try {
        docker(['rmi', ref]);
      } catch {
        // not there
      }
    }
  });

  it("A's own upload runs for A (and is then on the worker's engine)", async () => {
    const id = await queueTask(a, { code_name: 'job', payload: '{"a":1}' });
    const task = await waitForTask(a, id);
    expect(task).toMatchObject({ status: 'complete', msg: '' });
    expect((await taskLog(a, id)).text).toBe(`variant=a-${run}\n{"a":1}`);
    expect(inspect(upload).Id).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  describe("B cannot register A's upload by any spelling", () => {
    const spellings: [string, () => string, number, RegExp][] = [
      [
        'the platform host',
        () => `${registry}/kiln/${a.projectId}/job:latest`,
        403,
        /another project's uploads/,
      ],
      [
        'localhost',
        () => `localhost:${registryPort}/kiln/${a.projectId}/job:latest`,
        403,
        /another project's uploads/,
      ],
      [
        '[::1]',
        () => `[::1]:${registryPort}/kiln/${a.projectId}/job:latest`,
        403,
        /another project's uploads/,
      ],
      ['its digest', () => upload, 403, /another project's uploads/],
      [
        'localhost and its digest',
        () => upload.replace(registry, `localhost:${registryPort}`),
        403,
        /another project's uploads/,
      ],
      ['its image id', () => inspect(upload).Id.slice('sha256:'.length), 400, /image id/],
      ['sha256:<image id>', () => inspect(upload).Id, 400, /image id/],
      ['a short image id', () => inspect(upload).Id.slice(7, 19), 400, /image id/],
    ];
    it.each(spellings)('by %s: a 4xx {"msg"}, nothing written', async (_, image, status, msg) => {
      const res = await register(b, 'steal', image());
      expect(res.status).toBe(status);
      expect(res.body).toEqual({ msg: expect.stringMatching(msg) });
      expect(await codeNames(b)).not.toContain('steal');
    });
  });

  it('the worker refuses them too, whatever a revision holds (e.g. one stored before these checks)', async () => {
    const db = new Client({ connectionString: process.env.TEST_DATABASE_URL });
    await db.connect();
    try {
      const spellings = [
        [inspect(upload).Id, /image id/],
        [`localhost:${registryPort}/kiln/${a.projectId}/job:latest`, /another project's uploads/],
        [upload, /another project's uploads/],
      ] as const;
      for (const [i, [image, msg]] of spellings.entries()) {
        const codeId = await registerCode(b, `legacy-${i}`, { image: TEST_IMAGE });
        const updated = await db.query('UPDATE code_revisions SET image = $1 WHERE code_id = $2', [
          image,
          codeId,
        ]);
        expect(updated.rowCount).toBe(1);
        const id = await queueTask(b, { code_name: `legacy-${i}`, payload: '{"b":1}' });
        const task = await waitForTask(b, id);
        expect(task.status).toBe('error');
        expect(task.msg).toContain(`Could not pull image ${image}: `);
        expect(task.msg).toMatch(msg);
        expect((await taskLog(b, id)).text).toBe('');
      }
    } finally {
      await db.end();
    }
  });

  it('a shared image runs for both projects', async () => {
    for (const project of [a, b]) {
      await registerCode(project, 'shared', { image: TEST_IMAGE });
      const id = await queueTask(project, {
        code_name: 'shared',
        payload: `{"p":"${project.projectId}"}`,
      });
      const task = await waitForTask(project, id);
      expect(task).toMatchObject({ status: 'complete', msg: '' });
      expect((await taskLog(project, id)).text).toBe(`{"p":"${project.projectId}"}\n`);
    }
  });

  it.each([
    ['169.254.169.254/latest/job:1', /resolves to 169\.254\.169\.254, a link-local/],
    ['10.1.2.3:5000/job:1', /resolves to 10\.1\.2\.3, a private address/],
    [`localhost:${Number(registryPort) + 1}/job:1`, /resolves to 127\.0\.0\.1, a loopback address/],
  ])('a registry at %s is refused at registration: 400, nothing written', async (image, msg) => {
    const res = await register(b, 'inside', image);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ msg: expect.stringMatching(msg) });
    expect(await codeNames(b)).not.toContain('inside');
  });

  describe("A's private image on a credentialed registry", () => {
    let auth: AuthRegistry;
    let pushed: PrivateImage;
    let image: string;

    beforeAll(async () => {
      auth = await startAuthRegistry('kiln', `secret-${run}`);
      pushed = pushPrivateImage(auth, `private13/job:${run}`, TEST_IMAGE);
      image = pushed.image;
    }, 120_000);

    afterAll(async () => {
      pushed?.dispose();
      await auth?.stop();
    });

    it("runs for A with A's login; once cached on the worker, B's tasks end `error` and do not run", async () => {
      const stored = await call('POST', `/2/projects/${a.projectId}/credentials`, {
        token: a.token,
        json: { username: auth.username, password: auth.password, serveraddress: auth.host },
      });
      expect(stored.status).toBe(200);
      await registerCode(a, 'private', { image });
      const ran = await queueTask(a, { code_name: 'private', payload: '{"a":"private"}' });
      expect(await waitForTask(a, ran)).toMatchObject({ status: 'complete', msg: '' });
      const cached = inspect(image).Id;

      // B's registration passes (the registry is allowed here); B's tasks are refused.
      await registerCode(b, 'private', { image, retries: 0 });
      const noLogin = await queueTask(b, { code_name: 'private', payload: '{"b":1}' });
      const refused = await waitForTask(b, noLogin);
      expect(refused.status).toBe('error');
      expect(refused.msg).toContain(`Could not pull image ${image}: access denied by the registry`);
      expect(refused.msg).toContain(`store a login for ${auth.host} with POST /2/projects/`);
      expect((await taskLog(b, noLogin)).text).toBe('');

      const wrong = await call('POST', `/2/projects/${b.projectId}/credentials`, {
        token: b.token,
        json: { username: auth.username, password: 'not-the-password', serveraddress: auth.host },
      });
      expect(wrong.status).toBe(200);
      const wrongLogin = await queueTask(b, { code_name: 'private', payload: '{"b":2}' });
      const refusedAgain = await waitForTask(b, wrongLogin);
      expect(refusedAgain.status).toBe('error');
      expect(refusedAgain.msg).toContain(`the project's credentials for ${auth.host} were refused`);
      expect((await taskLog(b, wrongLogin)).text).toBe('');

      // The image stayed on the engine all along: it was there to run, and was not run.
      expect(inspect(image).Id).toBe(cached);
    });
  });
});
