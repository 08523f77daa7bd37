import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigMap, Namespace, Secret, Service } from 'kubernetes-models/v1';
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { parse, parseAllDocuments } from 'yaml';
import { withClient } from './support/database';
import { e2e, queueTask, registerCode, TestProject, waitForTask } from './support/kiln';
import { ROOT, freePort, sleep, waitForHealthy } from './support/processes';

/**
 * What deploy/ and docker/ hold, checked here: the Kubernetes overlays render with `kubectl
 * kustomize` and every object they render passes the Kubernetes schemas (kubernetes-models'
 * validators, built from the OpenAPI definitions); the compose file passes `docker-compose config`;
 * Kiln's image builds (scripts/build-kiln-image.sh, on a base made from this host's node), stays
 * under 250 MB, runs as a user of its own, migrates a database and serves the API.
 * No Kubernetes API server and no second host run here (docs/deploy.md says what is not checked).
 */

const K8S = join(ROOT, 'deploy', 'k8s');
const OVERLAYS = ['dind', 'node-docker'];

type K8sObject = Record<string, any>;

/** The model class of each kind the manifests may hold; another kind fails the test. */
const MODELS: Record<string, { new (data: any): { validate(): void } }> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/DaemonSet': DaemonSet,
  'batch/v1/Job': Job,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};

function render(overlay: string): K8sObject[] {
  const out = execFileSync('kubectl', ['kustomize', join(K8S, 'overlays', overlay)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return parseAllDocuments(out)
    .map((doc) => doc.toJS() as K8sObject | null)
    .filter((obj): obj is K8sObject => obj !== null);
}

/** Throws the schema's complaint about `obj`, naming it. */
function validate(obj: K8sObject): void {
  const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!Model) throw new Error(`no schema checked for ${obj.apiVersion} ${obj.kind}`);
  try {
    new Model(obj).validate();
  } catch (error) {
    throw new Error(`${obj.kind} ${obj.metadata?.name}: ${(error as Error).message}`);
  }
}

function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((obj) => obj.kind === kind && obj.metadata?.name === name);
  if (!found) throw new Error(`no ${kind} ${name} rendered`);
  return found;
}

/** Every container of every pod template, init containers (sidecars) included. */
function containers(objects: K8sObject[]): { owner: string; pod: any; container: any }[] {
  return objects.flatMap((obj) => {
    const pod = obj.spec?.template?.spec;
    if (!pod) return [];
    return [...(pod.initContainers ?? []), ...pod.containers].map((container: any) => ({
      owner: `${obj.kind}/${obj.metadata.name}`,
      pod,
      container,
    }));
  });
}

describe('Kubernetes manifests', () => {
  const rendered = Object.fromEntries(OVERLAYS.map((overlay) => [overlay, render(overlay)]));

  it.each(OVERLAYS)('%s: every rendered object passes the Kubernetes schemas', (overlay) => {
    const objects = rendered[overlay];
    expect(objects.length).toBeGreaterThanOrEqual(10);
    for (const obj of objects) validate(obj);
    // Everything but the namespace itself lives in it.
    for (const obj of objects.filter((o) => o.kind !== 'Namespace')) {
      expect([obj.kind, obj.metadata.namespace]).toEqual([obj.kind, 'kiln']);
    }
  });

  it('the schema check rejects a broken object (the validators bite)', () => {
    const api = structuredClone(find(rendered.dind, 'Deployment', 'kiln-api'));
    api.spec.replicas = 'two';
    expect(() => validate(api)).toThrow(/replicas must be integer/);
    const job = structuredClone(find(rendered.dind, 'Job', 'kiln-migrate'));
    delete job.spec.template.spec.containers[0].name;
    expect(() => validate(job)).toThrow(/containers\/0 must have required property name/);
    expect(() => validate({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' } })).toThrow(
      /no schema checked/,
    );
  });

  it.each(OVERLAYS)(
    '%s: API and Service, two schedulers, the migrate Job, config, PDBs',
    (overlay) => {
      const objects = rendered[overlay];
      const api = find(objects, 'Deployment', 'kiln-api');
      const service = find(objects, 'Service', 'kiln-api');
      expect(api.spec.template.metadata.labels).toEqual(
        expect.objectContaining(service.spec.selector),
      );
      expect(service.spec.selector).toEqual(api.spec.selector.matchLabels);
      expect(api.spec.replicas).toBeGreaterThanOrEqual(2);
      expect(find(objects, 'Deployment', 'kiln-scheduler').spec.replicas).toBe(2);
      const job = find(objects, 'Job', 'kiln-migrate');
      expect(job.spec.template.spec.containers[0].args).toEqual(['migrate']);
      find(objects, 'ConfigMap', 'kiln-config');
      const secret = find(objects, 'Secret', 'kiln-secrets');
      expect(Object.keys(secret.stringData)).toEqual(
        expect.arrayContaining(['DATABASE_URL', 'REDIS_URL', 'KILN_ADMIN_TOKEN']),
      );
      // Each long-running process has a budget whose selector matches its pods.
      const pdbs = objects.filter((obj) => obj.kind === 'PodDisruptionBudget');
      for (const name of ['kiln-api', 'kiln-scheduler', 'kiln-worker']) {
        const owner = objects.find(
          (obj) => ['Deployment', 'DaemonSet'].includes(obj.kind) && obj.metadata.name === name,
        )!;
        expect(owner).toBeDefined();
        const labels = owner.spec.template.metadata.labels;
        const pdb = pdbs.find((p) =>
          Object.entries(p.spec.selector.matchLabels).every(([k, v]) => labels[k] === v),
        );
        expect([name, pdb?.metadata.name]).toEqual([name, name]);
      }
      // Every Kiln container runs the image, takes its settings from the ConfigMap and Secret,
      // has requests and a memory limit; the long-running ones have both probes.
      for (const { owner, container } of containers(objects)) {
        expect([owner, container.name, container.resources?.requests?.memory]).toEqual([
          owner,
          container.name,
          expect.any(String),
        ]);
        expect([owner, container.name, container.resources?.limits?.memory]).toEqual([
          owner,
          container.name,
          expect.any(String),
        ]);
        if (container.name === 'dind') continue;
        expect(container.image).toBe('registry.example.com/kiln:0.1.0');
        expect(
          container.envFrom.map((from: any) => from.configMapRef?.name ?? from.secretRef?.name),
        ).toEqual(['kiln-config', 'kiln-secrets']);
        if (owner === 'Job/kiln-migrate') continue;
        expect([owner, container.readinessProbe?.httpGet?.path]).toEqual([owner, '/healthz']);
        expect([owner, container.livenessProbe?.httpGet?.path]).toEqual([owner, '/healthz']);
      }
    },
  );

  it.each(OVERLAYS)(
    '%s: no container is privileged or root but the Docker-in-Docker sidecar',
    (overlay) => {
      const all = containers(rendered[overlay]);
      const privileged = all.filter(({ container }) => container.securityContext?.privileged);
      expect(privileged.map(({ owner, container }) => `${owner}/${container.name}`)).toEqual(
        overlay === 'dind' ? ['Deployment/kiln-worker/dind'] : [],
      );
      for (const { owner, pod, container } of all) {
        if (container.name === 'dind') continue;
        const sc = { ...pod.securityContext, ...container.securityContext };
        expect([owner, container.name, sc.runAsNonRoot, sc.runAsUser]).toEqual([
          owner,
          container.name,
          true,
          1000,
        ]);
        expect([
          owner,
          container.name,
          container.securityContext?.allowPrivilegeEscalation,
        ]).toEqual([owner, container.name, false]);
        expect(container.securityContext.capabilities.drop).toEqual(['ALL']);
        expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
      }
    },
  );

  it('dind: workers bring their own engine, reached only through a unix socket in an emptyDir', () => {
    const worker = find(rendered.dind, 'Deployment', 'kiln-worker');
    const pod = worker.spec.template.spec;
    const [dind] = pod.initContainers;
    expect(dind.name).toBe('dind');
    // A native sidecar: started before the worker, stopped after it.
    expect(dind.restartPolicy).toBe('Always');
    const hosts = dind.args.filter((arg: string) => arg.startsWith('--host'));
    expect(hosts).toEqual(['--host=unix:///var/run/dind/docker.sock']);
    expect(dind.env).toEqual([{ name: 'DOCKER_TLS_CERTDIR', value: '' }]);
    expect(dind.ports).toBeUndefined();
    const volume = (name: string): any => pod.volumes.find((v: any) => v.name === name);
    const mountOf = (container: any, path: string): string =>
      container.volumeMounts.find((m: any) => m.mountPath === path)?.name;
    // Its storage is its own emptyDir, seen by no other container.
    expect(volume(mountOf(dind, '/var/lib/docker')).emptyDir).toBeDefined();
    const kiln = pod.containers[0];
    expect(mountOf(kiln, '/var/lib/docker')).toBeUndefined();
    // The socket's directory and the task files are emptyDirs both containers mount at one path.
    for (const path of ['/var/run/dind', '/var/lib/kiln/task-files']) {
      expect(mountOf(kiln, path)).toBe(mountOf(dind, path));
      expect(volume(mountOf(kiln, path)).emptyDir).toBeDefined();
    }
    const env = Object.fromEntries(kiln.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
    expect(env.DOCKER_SOCKET).toBe('/var/run/dind/docker.sock');
    expect(env.KILN_TASK_FILES_DIR).toBe('/var/lib/kiln/task-files');
    // The worker reaches the socket through the group dockerd gives it.
    expect(dind.args).toContain(`--group=${pod.securityContext.supplementalGroups[0]}`);
    expect(rendered.dind.some((obj) => obj.kind === 'DaemonSet')).toBe(false);
  });

  it("node-docker: one worker per node on the node's engine, no sidecar", () => {
    const objects = rendered['node-docker'];
    expect(
      objects.filter((obj) => obj.kind === 'Deployment').map((obj) => obj.metadata.name),
    ).toEqual(['kiln-api', 'kiln-scheduler']);
    const pod = find(objects, 'DaemonSet', 'kiln-worker').spec.template.spec;
    expect(pod.initContainers).toBeUndefined();
    const socket = pod.volumes.find((v: any) => v.hostPath);
    expect(socket.hostPath).toEqual({ path: '/var/run/docker.sock', type: 'Socket' });
    expect(pod.securityContext.supplementalGroups).toHaveLength(1);
    const env = Object.fromEntries(pod.containers[0].env.map((e: any) => [e.name, e]));
    expect(env.KILN_WORKER_ID.valueFrom.fieldRef.fieldPath).toBe('spec.nodeName');
    expect(env.KILN_CONTRACT_DELIVERY.value).toBe('archive');
  });
});

describe('compose file', () => {
  const file = join(ROOT, 'deploy', 'compose', 'docker-compose.yml');
  const example = join(ROOT, 'deploy', 'compose', 'example.env');
  const compose = (...args: string[]) =>
    spawnSync('docker-compose', ['-f', file, ...args], { encoding: 'utf8' });

  it('passes docker-compose config -q with the example settings', () => {
    const checked = compose('--env-file', example, 'config', '-q');
    expect([checked.status, checked.stderr]).toEqual([0, '']);
  });

  it('wants its secrets: without them docker-compose names the missing one', () => {
    const empty = join(mkdtempSync(join(tmpdir(), 'kiln-compose-')), 'empty.env');
    writeFileSync(empty, '');
    const checked = compose('--env-file', empty, 'config', '-q');
    expect(checked.status).not.toBe(0);
    expect(checked.stderr).toMatch(/set (POSTGRES_PASSWORD|DATABASE_URL|REDIS_URL|KILN_\w+)/);
  });

  it('holds the services, in order, with the worker on the engine socket', () => {
    const out = compose('--env-file', example, 'config');
    expect(out.status).toBe(0);
    expect(out.stdout).not.toContain('${');
    const services = parse(out.stdout).services;
    expect(Object.keys(services).sort()).toEqual(
      [
        'api',
        'migrate',
        'postgres',
        'redis',
        'registry',
        'scheduler-1',
        'scheduler-2',
        'worker',
      ].sort(),
    );
    for (const name of ['api', 'scheduler-1', 'scheduler-2', 'worker']) {
      expect(services[name].depends_on.migrate.condition).toBe('service_completed_successfully');
      expect(services[name].image).toBe('kiln:local');
      expect(services[name].environment.DATABASE_URL).toMatch(/^postgres:\/\//);
    }
    expect(services.migrate.command).toEqual(['migrate']);
    expect(services['scheduler-1'].environment.KILN_SCHEDULER_ID).not.toBe(
      services['scheduler-2'].environment.KILN_SCHEDULER_ID,
    );
    expect(services.worker.volumes.map((v: any) => (typeof v === 'string' ? v : v.target))).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\/var\/run\/docker\.sock:\/var\/run\/docker\.sock(:rw)?$/),
      ]),
    );
    expect(services.worker.group_add).toEqual(['999']);
    // Only the worker gets the socket.
    for (const name of ['api', 'scheduler-1', 'scheduler-2', 'migrate']) {
      expect(JSON.stringify(services[name].volumes ?? [])).not.toContain('docker.sock');
    }
  });
});

describe("Kiln's image", () => {
  const tag = 'kiln:e2e';
  const docker = (...args: string[]) =>
    spawnSync('docker', args, { encoding: 'utf8', env: process.env, timeout: 120_000 });
  const started: string[] = [];
  const database = `kiln_image_${randomBytes(3).toString('hex')}`;
  const server = process.env.TEST_DATABASE_URL!;
  const databaseUrl = (() => {
    const url = new URL(server);
    url.pathname = `/${database}`;
    return url.toString();
  })();
  /** What the image's processes below run with, the image's API, and a project on it. */
  let env: Record<string, string> = {};
  let apiUrl = '';
  let project: TestProject | undefined;

  /** `docker run -d` of the image on the host's network with `vars`; the container's id. */
  function runDetached(extra: string[], vars: Record<string, string>, command: string): string {
    const run = docker(
      'run',
      '-d',
      '--network',
      'host',
      '--health-interval',
      '1s',
      '--health-retries',
      '30',
      ...extra,
      ...Object.entries(vars).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
      tag,
      command,
    );
    expect([run.status, run.stderr]).toEqual([0, '']);
    const id = run.stdout.trim();
    started.push(id);
    return id;
  }

  /** The container's health as its HEALTHCHECK (docker/kiln/healthcheck.js) last found it. */
  async function healthOf(id: string): Promise<string> {
    let health = '';
    for (let i = 0; i < 60 && health !== 'healthy'; i++) {
      health = docker('inspect', '-f', '{{.State.Health.Status}}', id).stdout.trim();
      if (health !== 'healthy') await sleep(500);
    }
    return health;
  }

  beforeAll(() => {
    // Cold: a few minutes (npm ci and tsc on the host, the base, the image); warm: the inputs'
    // hash matches the image's label and nothing is built.
    execFileSync('bash', [join(ROOT, 'scripts', 'build-kiln-image.sh'), tag], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 600_000,
    });
  }, 610_000);

  afterAll(async () => {
    for (const id of started) docker('rm', '-f', id);
    await withClient(server, (client) =>
      client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`),
    );
  });

  it('is under 250 MB, runs as a user of its own, has a health check', () => {
    const inspected = docker('image', 'inspect', tag);
    expect(inspected.status).toBe(0);
    const [image] = JSON.parse(inspected.stdout);
    expect(image.Size).toBeLessThan(250 * 1000 * 1000);
    expect(image.Config.User).toBe('node');
    expect(image.Config.Healthcheck.Test).toEqual([
      'CMD',
      'node',
      '/app/docker/kiln/healthcheck.js',
    ]);
    const id = docker('run', '--rm', tag, 'id', '-u');
    expect([id.status, id.stdout.trim()]).toEqual([0, '1000']);
    const usage = docker('run', '--rm', tag, '');
    expect(usage.status).toBe(64);
    expect(usage.stderr).toContain('api|worker|scheduler|migrate');
  });

  it('a second build with the same inputs builds nothing', () => {
    const t0 = Date.now();
    const out = execFileSync('bash', [join(ROOT, 'scripts', 'build-kiln-image.sh'), tag], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(out).toContain(`${tag} is up to date`);
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('migrates a database, then serves the API, healthy, to authenticated calls', async () => {
    await withClient(server, (client) => client.query(`CREATE DATABASE ${database}`));
    const redisUrl = e2e().env.REDIS_URL;
    const migrated = docker(
      'run',
      '--rm',
      '--network',
      'host',
      '-e',
      `DATABASE_URL=${databaseUrl}`,
      '-e',
      `REDIS_URL=${redisUrl}`,
      tag,
      'migrate',
    );
    expect([migrated.status, migrated.stderr]).toEqual([0, expect.any(String)]);
    expect(migrated.stdout).toMatch(/^migrated: /);
    const expected = readdirSync(join(ROOT, 'migrations')).filter((f) =>
      /^\d+-\w+\.ts$/.test(f),
    ).length;
    const applied = await withClient(databaseUrl, (client) =>
      client.query('SELECT count(*)::int AS n FROM migrations'),
    );
    expect(applied.rows[0].n).toBe(expected);

    const port = await freePort();
    const adminToken = `admin-${randomBytes(12).toString('hex')}`;
    env = {
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      KILN_QUEUE_PREFIX: `kiln-image-${randomBytes(3).toString('hex')}`,
      KILN_ADMIN_TOKEN: adminToken,
      KILN_CREDENTIALS_KEY: randomBytes(32).toString('base64'),
      KILN_API_HOST: '127.0.0.1',
      KILN_API_PORT: String(port),
      KILN_SHARED_IMAGES: 'kiln-test/*',
    };
    const id = runDetached([], env, 'api');
    const url = `http://127.0.0.1:${port}`;
    await waitForHealthy(`${url}/healthz`);

    const auth = { authorization: `OAuth ${adminToken}`, 'content-type': 'application/json' };
    const created = await fetch(`${url}/2/projects`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ name: 'from the image' }),
    });
    expect(created.status).toBe(200);
    const made = (await created.json()) as { id: string };
    const issued = await fetch(`${url}/2/projects/${made.id}/tokens`, {
      method: 'POST',
      headers: auth,
      body: '{}',
    });
    expect(issued.status).toBe(200);
    const { token } = (await issued.json()) as { token: string };
    const read = await fetch(`${url}/2/projects/${made.id}`, {
      headers: { authorization: `OAuth ${token}` },
    });
    expect(read.status).toBe(200);
    expect(((await read.json()) as { name: string }).name).toBe('from the image');
    const refused = await fetch(`${url}/2/projects/${made.id}`, {
      headers: { authorization: 'OAuth wrong-token' },
    });
    expect(refused.status).toBe(401);
    // The image's own HEALTHCHECK finds the API in the container and calls it healthy.
    expect(await healthOf(id)).toBe('healthy');
    apiUrl = url;
    project = { projectId: made.id, token, url };
  }, 120_000);

  it('runs a scheduler, and a worker that runs a task on the engine through its socket', async () => {
    expect(project).toBeDefined();
    const schedulerPort = await freePort();
    const scheduler = runDetached(
      [],
      { ...env, KILN_SCHEDULER_HEALTH_PORT: String(schedulerPort), KILN_SCHEDULER_ID: 'image' },
      'scheduler',
    );
    await waitForHealthy(`http://127.0.0.1:${schedulerPort}/healthz`);
    expect(await healthOf(scheduler)).toBe('healthy');

    // The worker is user 1000 too: it reaches the engine through the socket's group, and hands
    // the task files over through a directory at the same path on the host and in the container.
    const socket = process.env.DOCKER_SOCKET!;
    const taskFiles = join(ROOT, '.kiln', `image-task-files-${randomBytes(3).toString('hex')}`);
    mkdirSync(taskFiles, { mode: 0o755 });
    chownSync(taskFiles, 1000, 1000);
    const workerPort = await freePort();
    const worker = runDetached(
      [
        '--group-add',
        String(statSync(socket).gid),
        '-v',
        `${socket}:/var/run/docker.sock`,
        '-v',
        `${taskFiles}:${taskFiles}`,
      ],
      {
        ...env,
        DOCKER_SOCKET: '/var/run/docker.sock',
        KILN_TASK_FILES_DIR: taskFiles,
        KILN_WORKER_ID: `${env.KILN_QUEUE_PREFIX}-image-worker`,
        KILN_WORKER_HEALTH_PORT: String(workerPort),
      },
      'worker',
    );
    try {
      await waitForHealthy(`http://127.0.0.1:${workerPort}/healthz`);
      expect(await healthOf(worker)).toBe('healthy');

      await registerCode(project!, 'image-hello');
      const taskId = await queueTask(project!, {
        code_name: 'image-hello',
        payload: '{"from":"the image"}',
      });
      const task = await waitForTask(project!, taskId);
      expect(task.status).toBe('complete');
      const log = await fetch(`${apiUrl}/2/projects/${project!.projectId}/tasks/${taskId}/log`, {
        headers: { authorization: `OAuth ${project!.token}` },
      });
      expect(log.status).toBe(200);
      expect(await log.text()).toContain('{"from":"the image"}');
    } finally {
      docker('rm', '-f', worker);
      rmSync(taskFiles, { recursive: true, force: true });
    }
  }, 180_000);
});
