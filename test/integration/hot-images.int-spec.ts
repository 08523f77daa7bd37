import Docker from 'dockerode';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, lstatSync, mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FrameDemuxer, OutputFrame } from '@kiln/docker';
import { Answer, callHot, fenced, requestSocket, waitFor } from '../../libs/fdk/src/fdk.fixture';
import { KILN_HOME, ROOT } from '../support/processes';

const NODE_HOT = 'kiln-test/node-hot:latest';
const BREAKER = 'kiln-test/hot-breaker:latest';
const LABEL = 'org.kiln.test.hot-images';

/**
 * The hot container test images (scripts/build-hot-test-images.sh) run as the worker runs a hot
 * container (docs/hot.md): hardened, user 65534, network none, read-only root, TASK_DIR and /tmp
 * as tmpfs, a host directory of their own at /mnt/kiln-hot; called on the socket there, their
 * output read from Docker's attach stream. The worker's own tests drive them through Kiln.
 */
// Containers start and are waited on with the fixture's 60 s polls.
jest.setTimeout(120_000);

describe('hot container test images', () => {
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET });
  const started: HotContainer[] = [];

  beforeAll(() => {
    // A no-op when they are up to date; a checkout on shared services has not built them.
    execFileSync('bash', [join(ROOT, 'scripts/build-hot-test-images.sh')], {
      stdio: 'pipe',
      env: { ...process.env, KILN_HOME },
    });
  }, 600_000);

  afterEach(async () => {
    await Promise.all(started.splice(0).map((container) => container.remove()));
  });

  /** A container of the worker's own making, its STDOUT and STDERR collected as they come. */
  class HotContainer {
    stdout = '';
    stderr = '';

    private constructor(
      readonly container: Docker.Container,
      readonly dir: string,
    ) {}

    get socketPath(): string {
      return join(this.dir, 'hot.sock');
    }

    static async start(image: string, cmd?: string[]): Promise<HotContainer> {
      const dir = mkdtempSync(join(KILN_HOME, 'hot-images-'));
      chmodSync(dir, 0o777);
      const tmpfs = (mode: string, uid: number): string =>
        `rw,exec,nosuid,nodev,size=16777216,mode=${mode},uid=${uid},gid=${uid}`;
      const container = await docker.createContainer({
        Image: image,
        Cmd: cmd,
        User: '65534:65534',
        Env: ['KILN_HOT_SOCKET=/mnt/kiln-hot/hot.sock', 'TASK_DIR=/mnt/task'],
        WorkingDir: '/mnt/task',
        Labels: { [LABEL]: '1' },
        HostConfig: {
          NetworkMode: 'none',
          ReadonlyRootfs: true,
          CapDrop: ['ALL'],
          SecurityOpt: ['no-new-privileges'],
          PidsLimit: 64,
          Memory: 256 * 1024 * 1024,
          Binds: [`${dir}:/mnt/kiln-hot`],
          Tmpfs: { '/mnt/task': tmpfs('0700', 65534), '/tmp': tmpfs('1777', 0) },
        },
      });
      const hot = new HotContainer(container, dir);
      started.push(hot);
      const stream = await container.attach({ stream: true, stdout: true, stderr: true });
      stream.pipe(new FrameDemuxer()).on('data', (frame: OutputFrame) => {
        if (frame.stream === 1) hot.stdout += frame.data.toString('utf8');
        else hot.stderr += frame.data.toString('utf8');
      });
      await container.start();
      return hot;
    }

    /** Resolves once the container answers on its socket. */
    async ready(): Promise<void> {
      await waitFor('the container to listen', async () => {
        const answer = await requestSocket(this.socketPath, 'GET', '/', {}, '').catch(
          () => undefined,
        );
        return answer !== undefined;
      });
    }

    call(payload: unknown, fence: string, taskId?: string): Promise<Answer> {
      return callHot(this.socketPath, payload, fence, {}, taskId);
    }

    /** Resolves with what the task of `fence` wrote on `stream`, once both its fences are there. */
    async fenced(fence: string, stream: 'stdout' | 'stderr' = 'stdout'): Promise<string> {
      await waitFor(
        `both fences on ${stream}`,
        async () => fenced(this[stream], fence) !== undefined,
      );
      return fenced(this[stream], fence)!;
    }

    async exitCode(): Promise<number> {
      const { StatusCode } = (await this.container.wait()) as { StatusCode: number };
      return StatusCode;
    }

    async remove(): Promise<void> {
      await this.container.remove({ force: true }).catch(() => undefined);
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  const newFence = (): string => randomBytes(16).toString('hex');

  it('node-hot runs task after task in one container, between fences, TASK_DIR emptied', async () => {
    const hot = await HotContainer.start(NODE_HOT);
    await hot.ready();
    const { Config } = await hot.container.inspect();

    const first = newFence();
    const payload = {
      countCalls: true,
      lines: ['hello'],
      errLines: ['warning'],
      writeFile: 'left-behind',
      progress: [50],
      result: 'first done',
    };
    expect(await hot.call(payload, first, 'task000000000000000000h1')).toEqual({
      status: 200,
      body: { status: 'complete', msg: 'first done' },
    });
    expect(await hot.fenced(first)).toBe(
      `container=${Config.Hostname} pid=1 task=task000000000000000000h1\ncalls=1\nhello\n` +
        `${first} progress 50\n`,
    );
    expect(await hot.fenced(first, 'stderr')).toBe('warning\n');

    const second = newFence();
    expect(
      await hot.call({ quiet: true, countCalls: true, listTaskDir: true, fail: 'nope' }, second),
    ).toEqual({ status: 200, body: { status: 'error', msg: 'nope' } });
    expect(await hot.fenced(second)).toBe('calls=2\ntaskdir=[]\n');
    // Nothing but fenced output: the container printed nothing of its own.
    expect(hot.stdout.startsWith(`${first}\n`)).toBe(true);
    expect(hot.stderr).toBe(`${first}\nwarning\n${first}\n${second}\n${second}\n`);
  });

  it('hot-breaker garbage answers 200 with a body that is not JSON, after a fenced task', async () => {
    const hot = await HotContainer.start(BREAKER, ['node', '/kiln/breaker.js', 'garbage']);
    await hot.ready();
    const fence = newFence();
    expect(await hot.call({}, fence)).toEqual({ status: 200, body: { text: 'this is not JSON' } });
    expect(await hot.fenced(fence)).toBe('breaker garbage\n');
  });

  it('hot-breaker exit-mid-task exits 3 after its start fences, with no answer', async () => {
    const hot = await HotContainer.start(BREAKER, ['node', '/kiln/breaker.js', 'exit-mid-task']);
    await hot.ready();
    const fence = newFence();
    await expect(hot.call({}, fence)).rejects.toThrow();
    expect(await hot.exitCode()).toBe(3);
    await waitFor('the line', async () => hot.stdout.includes('breaker exit-mid-task\n'));
    expect(hot.stdout).toBe(`${fence}\nbreaker exit-mid-task\n`);
    expect(hot.stderr).toBe(`${fence}\n`);
  });

  it('hot-breaker symlink-socket puts a link to /etc/passwd where the socket should be', async () => {
    const hot = await HotContainer.start(BREAKER, ['node', '/kiln/breaker.js', 'symlink-socket']);
    await waitFor('the link', async () => {
      try {
        return lstatSync(hot.socketPath).isSymbolicLink();
      } catch {
        return false;
      }
    });
    expect(readlinkSync(hot.socketPath)).toBe('/etc/passwd');
    await expect(hot.call({}, newFence())).rejects.toThrow();
    expect((await hot.container.inspect()).State.Running).toBe(true);
  });
});
