import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FdkProcess, NODE_HOT_HANDLER, buildFdk, tempDir } from './fdk.fixture';

/** `handle(fn)` without KILN_HOT_SOCKET: one cold task, as any Kiln task runs (DESIGN.md). */
// Each test starts a process and waits on it with the fixture's 60 s polls.
jest.setTimeout(120_000);

describe('@kiln/fdk cold', () => {
  let root: string;
  let nodePath: string;

  beforeAll(() => {
    root = tempDir('cold');
    nodePath = buildFdk(root);
  }, 120_000);

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  /** Runs the node-hot handler cold on `payload` (no PAYLOAD_FILE when `undefined`). */
  async function runCold(payload: unknown, config?: string): Promise<FdkProcess> {
    const dir = tempDir('task');
    const env: Record<string, string> = { TASK_ID: 'task0000000000000000cold', TASK_DIR: dir };
    if (payload !== undefined) {
      writeFileSync(join(dir, 'payload.json'), JSON.stringify(payload));
      env.PAYLOAD_FILE = join(dir, 'payload.json');
    }
    if (config !== undefined) {
      writeFileSync(join(dir, 'config.json'), config);
      env.CONFIG_FILE = join(dir, 'config.json');
    }
    const fdk = FdkProcess.start(NODE_HOT_HANDLER, nodePath, env);
    await fdk.exited;
    return fdk;
  }

  it('runs the handler once on PAYLOAD_FILE and exits 0, without fences or progress lines', async () => {
    const fdk = await runCold(
      { lines: ['a'], progress: [50], printConfig: true, result: 'r' },
      '[1]',
    );
    expect(fdk.child.exitCode).toBe(0);
    expect(fdk.stdout).toMatch(
      /^container=\S+ pid=\d+ task=task0000000000000000cold\na\nconfig=\[1\]\n$/,
    );
    expect(fdk.stderr).toBe('');
  });

  it('exits 1 with the error’s message on STDERR when the handler throws', async () => {
    const fdk = await runCold({ quiet: true, errLines: ['before'], fail: 'bad input' });
    expect(fdk.child.exitCode).toBe(1);
    expect(fdk.stderr).toBe('before\nbad input\n');
  });

  it('exits once the handler is done, whatever it left running, its output flushed', async () => {
    const fdk = await runCold({ quiet: true, background: true, noNewline: 'last' });
    expect(fdk.child.exitCode).toBe(0);
    expect(fdk.stdout).toMatch(/last$/);
  });

  it('gives an empty payload without PAYLOAD_FILE, and a null config without CONFIG_FILE', async () => {
    const fdk = await runCold(undefined);
    expect(fdk.child.exitCode).toBe(0);
    expect(fdk.stdout).toMatch(/^container=\S+ pid=\d+ task=task0000000000000000cold\n$/);
  });
});
