import { loadConfig } from '@kiln/config';
import type { CodeRevision } from '@kiln/codes';
import type { Task } from '@kiln/tasks';
import { CONTRACT_PATHS, containerSpec, contractArchive, taskLimits } from './container-contract';

const env = { DATABASE_URL: 'postgres://u:p@127.0.0.1/db', REDIS_URL: 'redis://127.0.0.1' };
const container = loadConfig({
  ...env,
  KILN_CONTAINER_CPUS: '1',
  KILN_CONTAINER_CPUS_MAX: '4',
  KILN_CONTAINER_MEMORY_MB: '512',
  KILN_CONTAINER_MEMORY_MB_MAX: '2048',
  KILN_TASK_DIR_MB: '8',
  KILN_CONTAINER_TMP_MB: '4',
}).container;

const task = {
  id: 'a'.repeat(24),
  projectId: 'b'.repeat(24),
  attempt: 1,
  payload: '{"x":1}',
} as Task;
const revision = (limits: Partial<CodeRevision> = {}) =>
  ({
    image: 'kiln-test/busybox:latest',
    command: '',
    config: '{}',
    envVars: {},
    cpus: null,
    memoryMb: null,
    ...limits,
  }) as CodeRevision;

describe('taskLimits', () => {
  it("takes the code's own cpus and memory, else the operator's defaults", () => {
    expect(taskLimits(revision(), container, 8)).toEqual({ cpus: 1, memoryMb: 512 });
    expect(taskLimits(revision({ cpus: 0.5, memoryMb: 64 }), container, 8)).toEqual({
      cpus: 0.5,
      memoryMb: 64,
    });
  });

  it('never gives more than the operator maximum, nor more CPUs than the engine has', () => {
    // A revision made under a higher maximum than this worker's.
    expect(taskLimits(revision({ cpus: 16, memoryMb: 99999 }), container, 8)).toEqual({
      cpus: 4,
      memoryMb: 2048,
    });
    expect(taskLimits(revision({ cpus: 3 }), container, 2).cpus).toBe(2);
    expect(taskLimits(revision({ cpus: 3 }), container, undefined).cpus).toBe(3);
  });
});

describe('containerSpec', () => {
  it('a read-only root, CPU and memory limits, nofile, and size-capped TASK_DIR and /tmp', () => {
    const spec = containerSpec(task, revision(), 'img', 'w', container, '/dev/shm/x', {
      cpus: 0.5,
      memoryMb: 100,
    });
    expect(spec).toMatchObject({
      nanoCpus: 500_000_000,
      memoryBytes: 100 * 1024 * 1024,
      nofile: 4096,
      writableRootBytes: undefined,
      readOnlyBind: { source: '/dev/shm/x', target: '/mnt/kiln' },
      deliveryVolume: undefined,
    });
    expect(spec.tmpfs).toEqual([
      { target: '/mnt/task', uid: 65534, gid: 65534, mode: '0700', sizeBytes: 8 * 1024 * 1024 },
      { target: '/tmp', uid: 0, gid: 0, mode: '1777', sizeBytes: 4 * 1024 * 1024 },
    ]);
  });

  it("the image's VOLUMEs get a size-capped tmpfs each, not a volume on the engine's disk", () => {
    const spec = containerSpec(
      task,
      revision(),
      'img',
      'w',
      container,
      '/dev/shm/x',
      { cpus: 1, memoryMb: 512 },
      ['/data', 'var/lib/db/', '/tmp', '/mnt/kiln/x', '/mnt/task', '/data/', '/'],
    );
    expect(spec.tmpfs.map((tmpfs) => [tmpfs.target, tmpfs.mode, tmpfs.sizeBytes])).toEqual([
      ['/mnt/task', '0700', 8 * 1024 * 1024],
      ['/tmp', '1777', 4 * 1024 * 1024],
      ['/data', '1777', 4 * 1024 * 1024],
      ['/var/lib/db', '1777', 4 * 1024 * 1024],
    ]);
  });

  it('archive delivery: a volume at /mnt/kiln for the files instead of a host directory', () => {
    const spec = containerSpec(task, revision(), 'img', 'w', container, undefined, {
      cpus: 1,
      memoryMb: 512,
    });
    expect(spec.readOnlyBind).toBeUndefined();
    expect(spec.deliveryVolume).toBe(CONTRACT_PATHS.filesDir);
    expect(contractArchive(task, revision()).map((entry) => [entry.path, entry.mode])).toEqual([
      ['payload.json', 0o444],
      ['config.json', 0o444],
    ]);
  });

  it('a writable root only when the operator sets its size', () => {
    const writable = { ...container, writableRootMb: 100 };
    const spec = containerSpec(task, revision(), 'img', 'w', writable, undefined, {
      cpus: 1,
      memoryMb: 512,
    });
    expect(spec.writableRootBytes).toBe(100 * 1024 * 1024);
  });
});
