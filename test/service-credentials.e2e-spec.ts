import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  call,
  e2e,
  newProject,
  queueTask,
  registerCode,
  taskLog,
  waitForTask,
} from './support/kiln';
import { buildTestImage, docker, registryGet, TEST_IMAGE } from './support/images';
import {
  freePort,
  KILN_HOME,
  LOG_DIR,
  startApp,
  stopApp,
  waitForHealthy,
} from './support/processes';

/**
 * Service credentials (issue 14, part 5): scripts/infra.sh gives Postgres, Redis and the platform
 * registry random passwords, kept in the data folder with mode 0600, and every Kiln process uses
 * them; nothing it starts takes a request without them. Against the suite's real services.
 */
describe('service credentials', () => {
  // The folder of the services' env file: this checkout's .kiln, or another checkout's
  // (KILN_SHARED_INFRA, scripts/lib.sh) whose services this run uses.
  const infraHome = process.env.KILN_SHARED_INFRA
    ? dirname(process.env.KILN_SHARED_INFRA)
    : KILN_HOME;
  const passwordsFile = join(infraHome, 'service-passwords');
  const pgUrl = new URL(process.env.TEST_DATABASE_URL!);
  const redisUrl = new URL(process.env.REDIS_URL!);
  const registry = process.env.REGISTRY_URL!;
  const registryUser = process.env.KILN_REGISTRY_USERNAME!;
  const registryPassword = process.env.KILN_REGISTRY_PASSWORD!;
  const run = randomBytes(3).toString('hex');

  const passwords = (): Record<string, string> =>
    Object.fromEntries(
      readFileSync(passwordsFile, 'utf8')
        .split('\n')
        .map((line) => /^([A-Z_]+)=(.+)$/.exec(line))
        .filter((match): match is RegExpExecArray => match !== null)
        .map((match) => [match[1], match[2]]),
    );

  it('keeps random passwords in the data folder, mode 0600, as is the env file', () => {
    for (const file of [passwordsFile, join(infraHome, 'env')]) {
      const stat = statSync(file);
      expect({ file, mode: (stat.mode & 0o777).toString(8), uid: stat.uid }).toEqual({
        file,
        mode: '600',
        uid: 0,
      });
    }
    const values = passwords();
    expect(Object.keys(values).sort()).toEqual([
      'KILN_PG_PASSWORD',
      'KILN_REDIS_PASSWORD',
      'KILN_REGISTRY_PASSWORD',
      'KILN_REGISTRY_USERNAME',
    ]);
    for (const name of ['KILN_PG_PASSWORD', 'KILN_REDIS_PASSWORD', 'KILN_REGISTRY_PASSWORD']) {
      expect(values[name]).toMatch(/^[0-9a-f]{48}$/);
    }
    // What the processes were given is what the file holds.
    expect(decodeURIComponent(pgUrl.password)).toBe(values.KILN_PG_PASSWORD);
    expect(decodeURIComponent(redisUrl.password)).toBe(values.KILN_REDIS_PASSWORD);
    expect(registryPassword).toBe(values.KILN_REGISTRY_PASSWORD);
    expect(registryUser).toBe(values.KILN_REGISTRY_USERNAME);
  });

  describe('Postgres', () => {
    /** psql over TCP as `user` with `password` (none: the empty string); its error text, or ''. */
    const login = (user: string, password: string) =>
      new Promise<string>((resolve) => {
        execFile(
          'psql',
          [
            '-w',
            '-h',
            pgUrl.hostname,
            '-p',
            pgUrl.port,
            '-U',
            user,
            '-d',
            'postgres',
            '-tAc',
            'SELECT 1',
          ],
          { env: { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: '5' } },
          (error, stdout, stderr) => resolve(error ? stderr : stdout.trim() === '1' ? '' : stdout),
        );
      });

    it('refuses a TCP login without the password or with a wrong one, for kiln and postgres alike', async () => {
      expect(await login('kiln', '')).toMatch(/no password supplied/);
      expect(await login('kiln', 'kiln')).toMatch(/password authentication failed for user "kiln"/);
      expect(await login('kiln', randomBytes(24).toString('hex'))).toMatch(
        /password authentication failed/,
      );
      expect(await login('postgres', '')).toMatch(/no password supplied/);
      expect(await login('postgres', 'postgres')).toMatch(/password authentication failed/);
    });

    it('takes the right one', async () => {
      expect(await login('kiln', decodeURIComponent(pgUrl.password))).toBe('');
    });
  });

  describe('Redis', () => {
    /** Sends raw RESP lines on a fresh connection and resolves with the replies (one per line). */
    const talk = (lines: string[]) =>
      new Promise<string[]>((resolve, reject) => {
        const socket = connect(Number(redisUrl.port), redisUrl.hostname);
        let data = '';
        socket.setTimeout(5000, () => socket.destroy(new Error('no answer from Redis')));
        socket.on('error', reject);
        socket.on('data', (chunk) => {
          data += chunk.toString();
          const replies = data.split('\r\n').filter((reply) => reply !== '');
          if (replies.length >= lines.length) {
            socket.end();
            resolve(replies);
          }
        });
        socket.write(lines.map((line) => `${line}\r\n`).join(''));
      });

    it('refuses every command without AUTH, and a wrong password', async () => {
      expect(await talk(['PING', 'CONFIG GET dir', 'KEYS *'])).toEqual([
        expect.stringMatching(/^-NOAUTH/),
        expect.stringMatching(/^-NOAUTH/),
        expect.stringMatching(/^-NOAUTH/),
      ]);
      expect(await talk(['AUTH not-the-password', 'PING'])).toEqual([
        expect.stringMatching(/^-WRONGPASS/),
        expect.stringMatching(/^-NOAUTH/),
      ]);
    });

    it('answers once authenticated with the password', async () => {
      expect(await talk([`AUTH ${decodeURIComponent(redisUrl.password)}`, 'PING'])).toEqual([
        '+OK',
        '+PONG',
      ]);
    });
  });

  describe('the platform registry', () => {
    const basic = (user: string, password: string) =>
      `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

    it('answers 401 to anonymous and wrong-password requests: catalog, pulls, pushes', async () => {
      const anonymous = [
        ['GET', '/v2/'],
        ['GET', '/v2/_catalog'],
        ['GET', '/v2/kiln-creds/anything/manifests/latest'],
        ['POST', '/v2/kiln-creds/anything/blobs/uploads/'],
        ['PUT', '/v2/kiln-creds/anything/manifests/latest'],
      ];
      for (const [method, path] of anonymous) {
        const attempts: Record<string, string>[] = [
          {},
          { authorization: basic(registryUser, 'wrong-password-1234') },
          { authorization: basic('admin', registryPassword) },
        ];
        for (const headers of attempts) {
          const res = await fetch(`http://${registry}${path}`, { method, headers });
          expect({ method, path, status: res.status }).toEqual({ method, path, status: 401 });
          expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
        }
      }
      expect((await registryGet('/v2/_catalog', undefined, true)).status).toBe(401);
      expect((await registryGet('/v2/_catalog')).status).toBe(200);
    });

    it("the engine pulls nothing from it without the login; Kiln's own upload and run path works", async () => {
      const project = await newProject('service-credentials');
      // Kiln's path: an upload through the API (pushed with Kiln's login), run by a worker (pulled
      // with it), after the engine has lost the image.
      const tag = `kiln-test-creds/upload-${run}:1`;
      const dir = mkdtempSync(join(tmpdir(), 'kiln-creds-'));
      try {
        buildTestImage(tag, `creds-${run}`);
        docker(['save', '-o', join(dir, 'image.tar'), tag]);
        docker(['rmi', tag]);
        const uploaded = await call('POST', `/2/projects/${project.projectId}/codes/up/image`, {
          token: project.token,
          body: readFileSync(join(dir, 'image.tar')),
          headers: { 'content-type': 'application/x-tar' },
        });
        expect(uploaded.status).toBe(200);
        const image = uploaded.body.image as string;
        expect(image.startsWith(`${registry}/kiln/${project.projectId}/up@sha256:`)).toBe(true);

        // The docker CLI, with a config dir of its own (no login): the registry refuses the pull.
        const noLogin = mkdtempSync(join(tmpdir(), 'kiln-creds-docker-'));
        try {
          expect(() => docker(['pull', image], { dockerConfig: noLogin })).toThrow(
            /no basic auth credentials|unauthorized|authentication required/,
          );
        } finally {
          rmSync(noLogin, { recursive: true, force: true });
        }
        // Nor is it on the engine now: the worker must pull it, with Kiln's login.
        expect(() => docker(['image', 'inspect', image])).toThrow();

        const id = await queueTask(project, { code_name: 'up', payload: '{"creds":1}' });
        expect(await waitForTask(project, id)).toMatchObject({ status: 'complete', msg: '' });
        expect((await taskLog(project, id)).text).toBe(`variant=creds-${run}\n{"creds":1}`);
        expect(docker(['image', 'inspect', '--format', '{{.Id}}', image]).trim()).toMatch(
          /^sha256:/,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("lends Kiln's login to no project for the registry's other repositories", async () => {
      // The operator pushes an image of its own to the platform registry, with Kiln's login.
      const ref = `${registry}/operator-only/tool-${run}:1`;
      const config = mkdtempSync(join(tmpdir(), 'kiln-creds-docker-'));
      try {
        docker(['login', '-u', registryUser, '--password-stdin', registry], {
          dockerConfig: config,
          input: registryPassword,
        });
        docker(['tag', TEST_IMAGE, ref]);
        docker(['push', ref], { dockerConfig: config });
        docker(['rmi', ref]);
      } finally {
        rmSync(config, { recursive: true, force: true });
      }
      const project = await newProject('service-credentials-other');
      await registerCode(project, 'tool', { image: ref });
      const id = await queueTask(project, { code_name: 'tool', payload: '{}' });
      const task = await waitForTask(project, id);
      expect(task.status).toBe('error');
      expect(task.msg).toMatch(
        /access denied by the registry: .* is the platform registry, whose images outside kiln\/<project id>\/ run only when the operator shares them \(KILN_SHARED_IMAGES\)/,
      );
      expect(() => docker(['image', 'inspect', ref])).toThrow();
    });
  });

  it("leaves the passwords out of every Kiln process's log", () => {
    const secrets = Object.entries(passwords())
      .filter(([name]) => name.endsWith('_PASSWORD'))
      .map(([, value]) => value);
    const logs = readdirSync(LOG_DIR).filter((file) => file.endsWith('.log'));
    // The suite's shared API, worker and scheduler at least (test/support/global-setup.ts).
    expect(logs).toEqual(expect.arrayContaining(['api.log', 'worker.log', 'scheduler.log']));
    for (const file of logs) {
      const text = readFileSync(join(LOG_DIR, file), 'utf8');
      for (const secret of secrets) {
        expect({ file, leaks: text.includes(secret) }).toEqual({ file, leaks: false });
      }
    }
  });

  describe('KILN_CONTAINER_NETWORK=host', () => {
    const workerEnv = (extra: Record<string, string>) => ({
      ...e2e().env,
      // A cluster nobody queues to: this worker takes no task of the suite's.
      KILN_WORKER_CLUSTER: `creds-host-${run}`,
      KILN_WORKER_ID: `creds-host-${run}`,
      KILN_WORKER_HEALTH_PORT: '0',
      KILN_CONTAINER_NETWORK: 'host',
      ...extra,
    });
    const logOf = (label: string) => readFileSync(join(LOG_DIR, `${label}.log`), 'utf8');

    it('a worker refuses to start with it, naming the unsafe flag', async () => {
      const label = `creds-host-refused-${run}`;
      const child = startApp('worker', workerEnv({}), label);
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).not.toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(logOf(label)).toMatch(
        /KILN_CONTAINER_NETWORK=host .* refused unless KILN_UNSAFE_ALLOW_HOST_NETWORK=1/,
      );
    });

    it('with KILN_UNSAFE_ALLOW_HOST_NETWORK=1 it starts, and warns', async () => {
      const label = `creds-host-allowed-${run}`;
      const port = await freePort();
      const child = startApp(
        'worker',
        workerEnv({ KILN_UNSAFE_ALLOW_HOST_NETWORK: '1', KILN_WORKER_HEALTH_PORT: String(port) }),
        label,
      );
      try {
        await waitForHealthy(`http://127.0.0.1:${port}/healthz`, 60_000);
        expect(logOf(label)).toMatch(
          /"level":"warn".*KILN_CONTAINER_NETWORK=host \(KILN_UNSAFE_ALLOW_HOST_NETWORK\): task containers share this host's network/,
        );
      } finally {
        await stopApp(child);
      }
    });
  });
});
