import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigMap, Namespace, Secret, Service } from 'kubernetes-models/v1';
import { DaemonSet, Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
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
/** The API, the schedulers and the migration Job; and the workers, on their own. */
const NAMESPACES = { kiln: 'restricted', 'kiln-workers': 'privileged' } as const;
/** Where the image keeps the worker's journal (docker/Dockerfile's KILN_WORKER_JOURNAL_DIR). */
const JOURNAL_DIR = '/var/lib/kiln/journal';

type K8sObject = Record<string, any>;

/** The model class of each kind the manifests may hold; another kind fails the test. */
const MODELS: Record<string, { new (data: any): { validate(): void } }> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'apps/v1/DaemonSet': DaemonSet,
  'batch/v1/Job': Job,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};

/** What each of Kiln's workloads may see of the Secrets: the API alone holds the admin token. */
const SECRET_KEYS: Record<string, string[]> = {
  'kiln-api': [
    'DATABASE_URL',
    'REDIS_URL',
    'KILN_ADMIN_TOKEN',
    'KILN_CREDENTIALS_KEY',
    'KILN_METRICS_TOKEN',
    'KILN_REGISTRY_PASSWORD',
  ],
  'kiln-scheduler': ['DATABASE_URL', 'REDIS_URL', 'KILN_CREDENTIALS_KEY', 'KILN_METRICS_TOKEN'],
  'kiln-migrate': ['DATABASE_URL', 'REDIS_URL'],
  'kiln-worker': [
    'DATABASE_URL',
    'REDIS_URL',
    'KILN_CREDENTIALS_KEY',
    'KILN_METRICS_TOKEN',
    'KILN_REGISTRY_PASSWORD',
  ],
};

/** `kubectl kustomize` of an overlay of deploy/k8s/overlays, or of any directory. */
function render(overlay: string): K8sObject[] {
  const dir = overlay.startsWith('/') ? overlay : join(K8S, 'overlays', overlay);
  const out = execFileSync('kubectl', ['kustomize', dir], {
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

function find(objects: K8sObject[], kind: string, name: string, namespace?: string): K8sObject {
  const found = objects.find(
    (obj) =>
      obj.kind === kind &&
      obj.metadata?.name === name &&
      (namespace === undefined || obj.metadata.namespace === namespace),
  );
  if (!found) throw new Error(`no ${kind} ${name} rendered${namespace ? ` in ${namespace}` : ''}`);
  return found;
}

/** Objects that make pods: Deployments, StatefulSets, DaemonSets and Jobs. */
function workloads(objects: K8sObject[]): K8sObject[] {
  return objects.filter((obj) => obj.spec?.template?.spec);
}

/** The worker workload: the base's StatefulSet, or node-docker's DaemonSet. */
function workerOf(objects: K8sObject[]): K8sObject {
  const [worker, ...more] = workloads(objects).filter((obj) => obj.metadata.name === 'kiln-worker');
  expect(more).toEqual([]);
  return worker;
}

/** Every container of every pod template, init containers (sidecars) included. */
function containers(objects: K8sObject[]): { owner: string; pod: any; container: any }[] {
  return workloads(objects).flatMap((obj) => {
    const pod = obj.spec.template.spec;
    return [...(pod.initContainers ?? []), ...pod.containers].map((container: any) => ({
      owner: `${obj.kind}/${obj.metadata.name}`,
      pod,
      container,
    }));
  });
}

/**
 * The names of the variables a workload's containers can read from Secrets: every key of a
 * Secret named in `envFrom` (with its prefix), and every `secretKeyRef`; a Secret the
 * workload's namespace lacks fails the test (the pod would not start).
 */
function secretKeysSeen(objects: K8sObject[], workload: K8sObject): string[] {
  const namespace = workload.metadata.namespace;
  const pod = workload.spec.template.spec;
  const seen = new Set<string>();
  for (const container of [...(pod.initContainers ?? []), ...pod.containers]) {
    for (const from of container.envFrom ?? []) {
      if (!from.secretRef) continue;
      const secret = find(objects, 'Secret', from.secretRef.name, namespace);
      const keys = Object.keys({ ...secret.data, ...secret.stringData });
      for (const key of keys) seen.add(`${from.prefix ?? ''}${key}`);
    }
    for (const env of container.env ?? []) if (env.valueFrom?.secretKeyRef) seen.add(env.name);
  }
  // A Secret mounted as files would be seen too: none is.
  for (const volume of pod.volumes ?? []) {
    expect([workload.metadata.name, volume.name, volume.secret, volume.projected]).toEqual([
      workload.metadata.name,
      volume.name,
      undefined,
      undefined,
    ]);
  }
  return [...seen].sort();
}

type Level = 'restricted' | 'baseline' | 'privileged';

/** Volume types the `restricted` Pod Security profile allows. */
const RESTRICTED_VOLUMES = [
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
];
/** Capabilities `baseline` lets a container add. */
const BASELINE_CAPABILITIES = [
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
];

/**
 * What the Pod Security Standards (https://kubernetes.io/docs/concepts/security/pod-security-standards/)
 * find wrong with a pod: `baseline` lists what only `privileged` admits, `restricted` what
 * `baseline` admits and `restricted` does not. The checks that concern these manifests (host
 * namespaces and ports, privileged, capabilities, hostPath and other volume types, seccomp,
 * privilege escalation, non-root), as the API server's admission makes them: a container's
 * securityContext overrides its pod's.
 */
function podSecurityProblems(pod: any): { baseline: string[]; restricted: string[] } {
  const baseline: string[] = [];
  const restricted: string[] = [];
  if (pod.hostNetwork || pod.hostPID || pod.hostIPC) baseline.push('host namespaces');
  for (const volume of pod.volumes ?? []) {
    if (volume.hostPath) baseline.push(`hostPath volume ${volume.name}`);
    const type = Object.keys(volume).find((key) => key !== 'name');
    if (!RESTRICTED_VOLUMES.includes(type!)) restricted.push(`${type} volume ${volume.name}`);
  }
  const podSc = pod.securityContext ?? {};
  if (podSc.seccompProfile?.type === 'Unconfined') baseline.push('pod seccomp Unconfined');
  for (const container of [...(pod.initContainers ?? []), ...pod.containers]) {
    const name = container.name;
    const sc = container.securityContext ?? {};
    if (sc.privileged) baseline.push(`${name}: privileged`);
    for (const port of container.ports ?? []) {
      if (port.hostPort) baseline.push(`${name}: hostPort`);
    }
    const added: string[] = sc.capabilities?.add ?? [];
    for (const cap of added) {
      if (!BASELINE_CAPABILITIES.includes(cap)) baseline.push(`${name}: adds ${cap}`);
      if (cap !== 'NET_BIND_SERVICE') restricted.push(`${name}: adds ${cap}`);
    }
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) restricted.push(`${name}: keeps caps`);
    const seccomp = sc.seccompProfile?.type ?? podSc.seccompProfile?.type;
    if (seccomp === 'Unconfined') baseline.push(`${name}: seccomp Unconfined`);
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') {
      restricted.push(`${name}: no seccomp profile`);
    }
    if (sc.allowPrivilegeEscalation !== false) restricted.push(`${name}: may escalate`);
    if ((sc.runAsNonRoot ?? podSc.runAsNonRoot) !== true) restricted.push(`${name}: may be root`);
    if ((sc.runAsUser ?? podSc.runAsUser) === 0) restricted.push(`${name}: runs as root`);
  }
  return { baseline, restricted };
}

/** The strictest Pod Security level that admits `pod`. */
function levelOf(pod: any): Level {
  const { baseline, restricted } = podSecurityProblems(pod);
  if (baseline.length > 0) return 'privileged';
  return restricted.length > 0 ? 'baseline' : 'restricted';
}

const STRICTNESS: Level[] = ['privileged', 'baseline', 'restricted'];

describe('Kubernetes manifests', () => {
  const rendered = Object.fromEntries(OVERLAYS.map((overlay) => [overlay, render(overlay)]));

  it.each(OVERLAYS)('%s: every rendered object passes the Kubernetes schemas', (overlay) => {
    const objects = rendered[overlay];
    expect(objects.length).toBeGreaterThanOrEqual(10);
    for (const obj of objects) validate(obj);
    // Two namespaces: the workers' holds theirs (workload, config, Secret, Service, budget) and
    // nothing else; everything else is in kiln.
    expect(
      objects
        .filter((o) => o.kind === 'Namespace')
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(Object.keys(NAMESPACES).sort());
    for (const obj of objects.filter((o) => o.kind !== 'Namespace')) {
      const workers = /^kiln-worker(-config|-secrets)?$/.test(obj.metadata.name);
      expect([obj.kind, obj.metadata.name, obj.metadata.namespace]).toEqual([
        obj.kind,
        obj.metadata.name,
        workers ? 'kiln-workers' : 'kiln',
      ]);
    }
    expect(workerOf(objects).metadata.namespace).toBe('kiln-workers');
  });

  it('the schema check rejects a broken object (the validators bite)', () => {
    const api = structuredClone(find(rendered.dind, 'Deployment', 'kiln-api'));
    api.spec.replicas = 'two';
    expect(() => validate(api)).toThrow(/replicas must be integer/);
    const job = structuredClone(find(rendered.dind, 'Job', 'kiln-migrate'));
    delete job.spec.template.spec.containers[0].name;
    expect(() => validate(job)).toThrow(/containers\/0 must have required property name/);
    const worker = structuredClone(find(rendered.dind, 'StatefulSet', 'kiln-worker'));
    worker.spec.volumeClaimTemplates[0].spec.accessModes = 'ReadWriteOnce';
    expect(() => validate(worker)).toThrow(/accessModes must be array/);
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
      // Each long-running process has a budget, in its namespace, whose selector matches its pods.
      const pdbs = objects.filter((obj) => obj.kind === 'PodDisruptionBudget');
      for (const name of ['kiln-api', 'kiln-scheduler', 'kiln-worker']) {
        const owner = workloads(objects).find((obj) => obj.metadata.name === name)!;
        expect(owner).toBeDefined();
        const labels = owner.spec.template.metadata.labels;
        const pdb = pdbs.find(
          (p) =>
            p.metadata.namespace === owner.metadata.namespace &&
            Object.entries(p.spec.selector.matchLabels).every(([k, v]) => labels[k] === v),
        );
        expect([name, pdb?.metadata.name]).toEqual([name, name]);
      }
      // Every Kiln container runs the image and has requests and a memory limit; the long-running
      // ones have both probes; each process takes its settings from the ConfigMap of its namespace
      // and the Secret of its own, both there.
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
        if (container.name === 'journal-owner') continue;
        const worker = owner.endsWith('/kiln-worker');
        const component = owner.split('/')[1];
        expect([owner, container.envFrom]).toEqual([
          owner,
          [
            { configMapRef: { name: worker ? 'kiln-worker-config' : 'kiln-config' } },
            { secretRef: { name: `${component}-secrets` } },
          ],
        ]);
        if (owner === 'Job/kiln-migrate') continue;
        expect([owner, container.readinessProbe?.httpGet?.path]).toEqual([owner, '/healthz']);
        expect([owner, container.livenessProbe?.httpGet?.path]).toEqual([owner, '/healthz']);
      }
      for (const workload of workloads(objects)) {
        find(
          objects,
          'ConfigMap',
          workload.metadata.name === 'kiln-worker' ? 'kiln-worker-config' : 'kiln-config',
          workload.metadata.namespace,
        );
      }
      // The settings both ConfigMaps hold have one value.
      const main = find(objects, 'ConfigMap', 'kiln-config').data;
      const workers = find(objects, 'ConfigMap', 'kiln-worker-config').data;
      const shared = Object.keys(main).filter((key) => key in workers);
      expect(shared).toEqual(
        expect.arrayContaining(['KILN_QUEUE_PREFIX', 'REGISTRY_URL', 'KILN_REGISTRY_USERNAME']),
      );
      for (const key of shared) expect([key, workers[key]]).toEqual([key, main[key]]);
    },
  );

  it.each(OVERLAYS)('%s: each process sees only the secrets it reads', (overlay) => {
    const objects = rendered[overlay];
    const seen = Object.fromEntries(
      workloads(objects).map((w) => [w.metadata.name, secretKeysSeen(objects, w)]),
    );
    expect(seen).toEqual(
      Object.fromEntries(
        Object.entries(SECRET_KEYS).map(([name, keys]) => [name, [...keys].sort()]),
      ),
    );
    // No Secret for everyone any more, no Secret no process reads, and no process that can ask
    // the API server for one (no service account token in any pod).
    const secrets = objects.filter((obj) => obj.kind === 'Secret').map((obj) => obj.metadata.name);
    expect(secrets.sort()).toEqual(
      Object.keys(SECRET_KEYS)
        .map((name) => `${name}-secrets`)
        .sort(),
    );
    for (const workload of workloads(objects)) {
      expect([
        workload.metadata.name,
        workload.spec.template.spec.automountServiceAccountToken,
      ]).toEqual([workload.metadata.name, false]);
    }
    // What the Secrets share, they hold the same (placeholders here, one value per setting).
    const values = new Map<string, string>();
    for (const secret of objects.filter((obj) => obj.kind === 'Secret')) {
      for (const [key, value] of Object.entries<string>(secret.stringData)) {
        expect([secret.metadata.name, key, value]).toEqual([
          secret.metadata.name,
          key,
          values.get(key) ?? value,
        ]);
        values.set(key, value);
      }
    }
  });

  it.each(OVERLAYS)(
    '%s: kiln enforces Pod Security restricted, and every pod in it passes; the workers have their own namespace',
    (overlay) => {
      const objects = rendered[overlay];
      for (const [name, level] of Object.entries(NAMESPACES)) {
        const labels = find(objects, 'Namespace', name).metadata.labels;
        expect([name, labels['pod-security.kubernetes.io/enforce']]).toEqual([name, level]);
      }
      const levels = Object.fromEntries(
        workloads(objects).map((w) => [
          `${w.metadata.namespace}/${w.kind}/${w.metadata.name}`,
          levelOf(w.spec.template.spec),
        ]),
      );
      const workerKind = overlay === 'dind' ? 'StatefulSet' : 'DaemonSet';
      expect(levels).toEqual({
        'kiln/Deployment/kiln-api': 'restricted',
        'kiln/Deployment/kiln-scheduler': 'restricted',
        'kiln/Job/kiln-migrate': 'restricted',
        // dind: a privileged sidecar; node-docker: hostPath volumes (socket and journal), which
        // baseline already refuses. Either way only `privileged` admits the workers.
        [`kiln-workers/${workerKind}/kiln-worker`]: 'privileged',
      });
      // Every pod is admitted by its namespace's level.
      for (const workload of workloads(objects)) {
        const enforced = NAMESPACES[workload.metadata.namespace as keyof typeof NAMESPACES];
        const level = levelOf(workload.spec.template.spec);
        expect(STRICTNESS.indexOf(level)).toBeGreaterThanOrEqual(STRICTNESS.indexOf(enforced));
      }
      const { baseline } = podSecurityProblems(workerOf(objects).spec.template.spec);
      expect(baseline).toEqual(
        overlay === 'dind'
          ? ['dind: privileged']
          : ['hostPath volume docker-socket', 'hostPath volume journal'],
      );
    },
  );

  it.each(OVERLAYS)(
    "%s: an operator's overlay replaces each Secret's placeholders as docs/deploy.md shows",
    (overlay) => {
      // An overlay of one's own beside the others (kustomize loads bases by relative path), with
      // a secretGenerator entry per Secret from a file of its keys only.
      const mine = mkdtempSync(join(K8S, 'overlays', '.test-'));
      try {
        const entries = Object.entries(SECRET_KEYS).map(([component, keys]) => {
          const name = `${component}-secrets`;
          const file = `${component}.env`;
          writeFileSync(join(mine, file), keys.map((key) => `${key}=${name}-${key}`).join('\n'));
          const namespace = component === 'kiln-worker' ? 'kiln-workers' : 'kiln';
          return `  - { name: ${name}, namespace: ${namespace}, behavior: replace, env: ${file} }`;
        });
        writeFileSync(
          join(mine, 'kustomization.yaml'),
          [`bases:`, `  - ../${overlay}`, `secretGenerator:`, ...entries, ''].join('\n'),
        );
        const objects = render(mine);
        for (const obj of objects) validate(obj);
        const secrets = objects.filter((obj) => obj.kind === 'Secret');
        expect(secrets).toHaveLength(Object.keys(SECRET_KEYS).length);
        for (const secret of secrets) {
          const name = secret.metadata.name;
          expect(secret.stringData).toBeUndefined();
          const data = Object.fromEntries(
            Object.entries<string>(secret.data).map(([k, v]) => [
              k,
              Buffer.from(v, 'base64').toString(),
            ]),
          );
          const component = name.replace(/-secrets$/, '');
          expect(data).toEqual(
            Object.fromEntries(SECRET_KEYS[component].map((key) => [key, `${name}-${key}`])),
          );
        }
        // The workloads still find them, under the same names, in their namespaces.
        for (const workload of workloads(objects)) {
          expect(secretKeysSeen(objects, workload)).toEqual(
            [...SECRET_KEYS[workload.metadata.name]].sort(),
          );
        }
      } finally {
        rmSync(mine, { recursive: true, force: true });
      }
    },
  );

  it('the Pod Security check bites', () => {
    const api = () =>
      structuredClone(find(rendered.dind, 'Deployment', 'kiln-api').spec.template.spec);
    expect(levelOf(api())).toBe('restricted');
    const escalating = api();
    delete escalating.containers[0].securityContext.allowPrivilegeEscalation;
    expect(podSecurityProblems(escalating).restricted).toEqual(['api: may escalate']);
    const root = api();
    root.containers[0].securityContext.runAsUser = 0;
    expect(levelOf(root)).toBe('baseline');
    const noSeccomp = api();
    delete noSeccomp.securityContext.seccompProfile;
    expect(podSecurityProblems(noSeccomp).restricted).toEqual(['api: no seccomp profile']);
    const capable = api();
    capable.containers[0].securityContext.capabilities = { drop: ['ALL'], add: ['SYS_ADMIN'] };
    expect(levelOf(capable)).toBe('privileged');
    const host = api();
    host.volumes.push({ name: 'host', hostPath: { path: '/' } });
    expect(levelOf(host)).toBe('privileged');
    const nfs = api();
    nfs.volumes.push({ name: 'nfs', nfs: { server: 'x', path: '/' } });
    expect(levelOf(nfs)).toBe('baseline');
  });

  it.each(OVERLAYS)(
    '%s: no container is privileged or root but the engine sidecar and the journal chown',
    (overlay) => {
      const all = containers(rendered[overlay]);
      const privileged = all.filter(({ container }) => container.securityContext?.privileged);
      expect(privileged.map(({ owner, container }) => `${owner}/${container.name}`)).toEqual(
        overlay === 'dind' ? ['StatefulSet/kiln-worker/dind'] : [],
      );
      const root = all.filter(({ pod, container }) => {
        const sc = { ...pod.securityContext, ...container.securityContext };
        return sc.runAsUser !== 1000 || sc.runAsNonRoot !== true;
      });
      expect(root.map(({ owner, container }) => `${owner}/${container.name}`)).toEqual(
        overlay === 'dind'
          ? ['StatefulSet/kiln-worker/dind']
          : ['DaemonSet/kiln-worker/journal-owner'],
      );
      for (const { owner, pod, container } of all) {
        if (container.name === 'dind') continue;
        const sc = container.securityContext;
        expect([owner, container.name, sc.allowPrivilegeEscalation]).toEqual([
          owner,
          container.name,
          false,
        ]);
        expect(sc.capabilities.drop).toEqual(['ALL']);
        expect(sc.readOnlyRootFilesystem).toBe(true);
        if (container.name === 'journal-owner') {
          // Root for one chown, with that one capability.
          expect([sc.runAsUser, sc.capabilities.add]).toEqual([0, ['CHOWN']]);
          continue;
        }
        expect(sc.capabilities.add).toBeUndefined();
        expect({ ...pod.securityContext, ...sc }.runAsUser).toBe(1000);
      }
    },
  );

  it('dind: workers bring their own engine, reached only through a unix socket in an emptyDir', () => {
    const worker = find(rendered.dind, 'StatefulSet', 'kiln-worker');
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
    expect(
      rendered.dind.some((obj) => obj.kind === 'Deployment' && obj.metadata.name === 'kiln-worker'),
    ).toBe(false);
  });

  it('dind: each worker keeps its journal on a volume claim of its own, under a stable id', () => {
    const worker = find(rendered.dind, 'StatefulSet', 'kiln-worker', 'kiln-workers');
    const pod = worker.spec.template.spec;
    const kiln = pod.containers.find((c: any) => c.name === 'worker');
    // The image's journal directory, not moved by the manifests.
    expect(readFileSync(join(ROOT, 'docker', 'Dockerfile'), 'utf8')).toContain(
      `KILN_WORKER_JOURNAL_DIR=${JOURNAL_DIR}`,
    );
    const env = Object.fromEntries(kiln.env.map((e: any) => [e.name, e]));
    expect(env.KILN_WORKER_JOURNAL_DIR).toBeUndefined();
    const mount = kiln.volumeMounts.find((m: any) => m.mountPath === JOURNAL_DIR);
    // Not a volume of the pod (those die with it) but a claim per pod, kept when the pod goes,
    // when the set is scaled down and when it is deleted.
    expect(pod.volumes.map((v: any) => v.name)).not.toContain(mount.name);
    const [claim, ...others] = worker.spec.volumeClaimTemplates;
    expect(others).toEqual([]);
    expect(claim.metadata.name).toBe(mount.name);
    expect(claim.spec.accessModes).toEqual(['ReadWriteOnce']);
    expect(claim.spec.resources.requests.storage).toMatch(/^\d+[MG]i$/);
    expect(worker.spec.persistentVolumeClaimRetentionPolicy).toEqual({
      whenDeleted: 'Retain',
      whenScaled: 'Retain',
    });
    // The journal is kept under <dir>/<worker id>: the id is the pod's name, kiln-worker-N, the
    // same for every pod that takes the claim over.
    expect(env.KILN_WORKER_ID.valueFrom.fieldRef.fieldPath).toBe('metadata.name');
    // uid 1000 writes to it: fsGroup gives the claim's volume to the worker's group.
    expect(pod.securityContext.fsGroup).toBe(kiln.securityContext.runAsGroup);
    // The governing Service is headless and finds the workers.
    const service = find(rendered.dind, 'Service', worker.spec.serviceName, 'kiln-workers');
    expect(service.spec.clusterIP).toBe('None');
    expect(service.spec.selector).toEqual(worker.spec.selector.matchLabels);
    // The engine's own storage still dies with the pod, as the engine does.
    const storage = pod.initContainers[0].volumeMounts.find(
      (m: any) => m.mountPath === '/var/lib/docker',
    );
    expect(pod.volumes.find((v: any) => v.name === storage.name).emptyDir).toBeDefined();
  });

  it("node-docker: one worker per node on the node's engine, no sidecar, the journal on the node", () => {
    const objects = rendered['node-docker'];
    expect(
      objects.filter((obj) => obj.kind === 'Deployment').map((obj) => obj.metadata.name),
    ).toEqual(['kiln-api', 'kiln-scheduler']);
    expect(objects.some((obj) => obj.kind === 'StatefulSet')).toBe(false);
    const daemonSet = find(objects, 'DaemonSet', 'kiln-worker', 'kiln-workers');
    const pod = daemonSet.spec.template.spec;
    const volume = (name: string): any => pod.volumes.find((v: any) => v.name === name);
    const kiln = pod.containers.find((c: any) => c.name === 'worker');
    const mountOf = (container: any, path: string): string =>
      container.volumeMounts.find((m: any) => m.mountPath === path)?.name;
    expect(volume(mountOf(kiln, '/var/run/docker.sock')).hostPath).toEqual({
      path: '/var/run/docker.sock',
      type: 'Socket',
    });
    expect(pod.securityContext.supplementalGroups).toHaveLength(1);
    const env = Object.fromEntries(kiln.env.map((e: any) => [e.name, e]));
    expect(env.KILN_WORKER_ID.valueFrom.fieldRef.fieldPath).toBe('spec.nodeName');
    expect(env.KILN_CONTRACT_DELIVERY.value).toBe('archive');
    expect(env.KILN_WORKER_JOURNAL_DIR).toBeUndefined();

    // The journal: a directory of the node's, made if missing, kept across the pods there.
    const journal = volume(mountOf(kiln, JOURNAL_DIR));
    expect(journal.hostPath).toEqual({ path: JOURNAL_DIR, type: 'DirectoryOrCreate' });
    // One pod per node at any time, even during a rolling update: no two workers share it.
    expect(daemonSet.spec.updateStrategy.rollingUpdate.maxSurge).toBe(0);
    // fsGroup does not reach hostPath volumes: an init container hands the directory to the
    // worker's user before the worker starts, and does nothing else.
    const [owner, ...more] = pod.initContainers;
    expect(more).toEqual([]);
    expect(owner.name).toBe('journal-owner');
    expect(mountOf(owner, JOURNAL_DIR)).toBe(journal.name);
    const { runAsUser, runAsGroup } = { ...pod.securityContext, ...kiln.securityContext };
    expect(owner.args).toEqual(['chown', `${runAsUser}:${runAsGroup}`, JOURNAL_DIR]);
    expect(owner.restartPolicy).toBeUndefined();
    expect(owner.envFrom).toBeUndefined();
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

  it('gives the admin token to the API alone', () => {
    const out = compose('--env-file', example, 'config');
    expect(out.status).toBe(0);
    const services = parse(out.stdout).services;
    const holders = Object.keys(services).filter(
      (name) => services[name].environment?.KILN_ADMIN_TOKEN !== undefined,
    );
    expect(holders).toEqual(['api']);
  });

  /** The compose file rendered with a Redis password of the test's own, and that password. */
  function withRedisPassword(): { services: Record<string, any>; password: string } {
    const password = randomBytes(24).toString('hex');
    const env = join(mkdtempSync(join(tmpdir(), 'kiln-compose-')), 'kiln.env');
    writeFileSync(
      env,
      readFileSync(example, 'utf8')
        .replace(/^REDIS_PASSWORD=.*$/m, `REDIS_PASSWORD=${password}`)
        .replace(/^REDIS_URL=.*$/m, `REDIS_URL=redis://default:${password}@redis:6379`),
    );
    expect(compose('--env-file', env, 'config', '-q').status).toBe(0);
    const out = compose('--env-file', env, 'config');
    expect(out.status).toBe(0);
    return { services: parse(out.stdout).services, password };
  }

  it("puts Redis's password on no command line: only in the environment", () => {
    const { services, password } = withRedisPassword();
    for (const [name, service] of Object.entries(services)) {
      const argv = JSON.stringify([service.command, service.entrypoint, service.healthcheck]);
      expect([name, argv.includes(password)]).toEqual([name, false]);
    }
    expect(services.redis.environment.REDIS_PASSWORD).toBe(password);
    expect(services.redis.command).toBeUndefined();
    expect(services.redis.entrypoint.slice(0, 2)).toEqual(['sh', '-c']);
  });

  it("Redis's start script and health check work on a real redis-server, the password in no ps line", async () => {
    const { services, password } = withRedisPassword();
    // What the container's shell runs: compose turns `$$` into `$`.
    const unescape = (text: string): string => text.replaceAll('$$', '$');
    const script = unescape(services.redis.entrypoint[2]);
    const healthcheck = unescape(services.redis.healthcheck.test[1]);
    expect(services.redis.healthcheck.test[0]).toBe('CMD-SHELL');
    // Stand-ins for the image's parts: its entrypoint (which drops to the redis user and execs
    // the command) runs this host's redis-server in a directory of the test's, on a unix socket
    // only; redis-cli is the host's, pointed at that socket.
    const dir = mkdtempSync(join(tmpdir(), 'kiln-redis-'));
    const socket = join(dir, 'redis.sock');
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const redisCli = execFileSync('sh', ['-c', 'command -v redis-cli'], {
      encoding: 'utf8',
    }).trim();
    writeFileSync(
      join(bin, 'docker-entrypoint.sh'),
      `#!/bin/sh\nexec "$@" --port 0 --unixsocket ${socket} --dir ${dir} --save ''\n`,
      { mode: 0o755 },
    );
    writeFileSync(join(bin, 'redis-cli'), `#!/bin/sh\nexec ${redisCli} -s ${socket} "$@"\n`, {
      mode: 0o755,
    });
    const PATH = `${bin}:${process.env.PATH}`;
    const server = spawn('sh', ['-c', script], {
      env: { PATH, REDIS_PASSWORD: password },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const cli = (auth: string | undefined, ...args: string[]) =>
      spawnSync(redisCli, ['-s', socket, ...args], {
        encoding: 'utf8',
        env: auth === undefined ? { PATH } : { PATH, REDISCLI_AUTH: auth },
      });
    try {
      const deadline = Date.now() + 30_000;
      while (cli(password, 'ping').stdout.trim() !== 'PONG') {
        if (Date.now() > deadline) throw new Error('redis-server did not answer within 30 s');
        await sleep(100);
      }
      // It wants the password, and has the append-only file the script asked for.
      expect(cli(undefined, 'ping').stdout).toContain('NOAUTH');
      expect(cli('wrong', 'ping').stdout).not.toContain('PONG');
      expect(cli(password, 'config', 'get', 'appendonly').stdout.split('\n')[1]).toBe('yes');
      // The health check passes with the container's environment, and fails with a wrong one.
      const health = (value: string) =>
        spawnSync('sh', ['-c', healthcheck], { env: { PATH, REDIS_PASSWORD: value } }).status;
      expect(health(password)).toBe(0);
      expect(health('wrong')).not.toBe(0);
      // The password is on no process's command line, and out of redis-server's environment.
      const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
      expect(ps).toContain(socket);
      expect(ps).not.toContain(password);
      const pid = /process_id:(\d+)/.exec(cli(password, 'info', 'server').stdout)![1];
      for (const file of ['cmdline', 'environ']) {
        expect([file, readFileSync(`/proc/${pid}/${file}`, 'utf8').includes(password)]).toEqual([
          file,
          false,
        ]);
      }
    } finally {
      if (server.exitCode === null && server.signalCode === null) {
        const exited = new Promise((resolve) => server.once('exit', resolve));
        server.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
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
