import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FdkProcess, NODE_HOT_HANDLER, buildFdk, fenced, tempDir, waitFor } from './fdk.fixture';

/**
 * The hot contract as @kiln/fdk speaks it (docs/hot.md): a process of its own on a real Unix
 * socket, driven through the kiln-test/node-hot handler (docker/test-images/node-hot/handler.js)
 * or a script of the test's own.
 */
// Each test starts a process and waits on it with the fixture's 60 s polls.
jest.setTimeout(120_000);

describe('@kiln/fdk hot', () => {
  let root: string;
  let nodePath: string;
  const started: FdkProcess[] = [];

  beforeAll(() => {
    root = tempDir('hot');
    nodePath = buildFdk(root);
  }, 120_000);

  afterEach(async () => {
    await Promise.all(started.splice(0).map((fdk) => fdk.stop()));
  });

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const newFence = (): string => randomBytes(16).toString('hex');

  /** A hot process of `script` (the node-hot handler unless given), listening. */
  async function startHot(
    options: { script?: string; config?: string; socketPath?: string } = {},
  ): Promise<{ fdk: FdkProcess; taskDir: string }> {
    const dir = tempDir('run');
    const taskDir = join(dir, 'task');
    mkdirSync(taskDir);
    const env: Record<string, string> = {
      KILN_HOT_SOCKET: options.socketPath ?? join(dir, 'hot.sock'),
      TASK_DIR: taskDir,
      PAYLOAD_FILE: join(dir, 'payload.json'),
    };
    if (options.config !== undefined) {
      writeFileSync(join(dir, 'config.json'), options.config);
      env.CONFIG_FILE = join(dir, 'config.json');
    }
    const fdk = FdkProcess.start(options.script ?? NODE_HOT_HANDLER, nodePath, env);
    started.push(fdk);
    await fdk.ready();
    return { fdk, taskDir };
  }

  /** A handler script of the test's own, in a file. */
  function script(source: string): string {
    const file = join(tempDir('script'), 'handler.js');
    writeFileSync(file, `const { handle } = require('@kiln/fdk');\n${source}\n`);
    return file;
  }

  it('runs a task between its fences on STDOUT and STDERR and answers complete with its result', async () => {
    const { fdk } = await startHot();
    const fence = newFence();
    const answer = await fdk.call(
      { lines: ['one', 'two'], errLines: ['oops'], result: 'done' },
      fence,
      {},
      'task000000000000000000a1',
    );
    expect(answer).toEqual({ status: 200, body: { status: 'complete', msg: 'done' } });
    // Flushed before the answer; the pipe's bytes may still be on their way to this process.
    await fdk.waitForOutput(`two\n${fence}\n`);
    await fdk.waitForOutput(`oops\n${fence}\n`, 'stderr');
    expect(fenced(fdk.stdout, fence)).toMatch(
      /^container=\S+ pid=\d+ task=task000000000000000000a1\none\ntwo\n$/,
    );
    expect(fdk.stdout).toMatch(new RegExp(`^${fence}\\n`));
    expect(fenced(fdk.stderr, fence)).toBe('oops\n');
    expect(fdk.stderr).toBe(`${fence}\noops\n${fence}\n`);
  });

  it('answers error with the message of what the handler threw, and serves the next call', async () => {
    const { fdk } = await startHot();
    const fence = newFence();
    const failed = await fdk.call({ countCalls: true, fail: 'no such image' }, fence);
    expect(failed).toEqual({ status: 200, body: { status: 'error', msg: 'no such image' } });
    await fdk.waitForOutput(`calls=1\n${fence}\n`);

    const next = newFence();
    const answer = await fdk.call({ quiet: true, countCalls: true }, next);
    expect(answer).toEqual({ status: 200, body: { status: 'complete', msg: '' } });
    await fdk.waitForOutput(`${next}\ncalls=2\n${next}\n`);
  });

  it('answers complete with an empty msg for any payload, JSON or not', async () => {
    const { fdk } = await startHot();
    for (const payload of ['', 'not json', '[1,2]', 'null']) {
      const fence = newFence();
      expect(await fdk.call(payload, fence)).toEqual({
        status: 200,
        body: { status: 'complete', msg: '' },
      });
      await fdk.waitForOutput(`${fence}\n`, 'stderr');
    }
  });

  it('empties TASK_DIR after each task, its contents only, never following a link', async () => {
    const { fdk, taskDir } = await startHot();
    const outside = tempDir('outside');
    writeFileSync(join(outside, 'keep'), 'not the task’s');
    mkdirSync(join(taskDir, 'nested/deeper'), { recursive: true });
    writeFileSync(join(taskDir, 'nested/deeper/file'), 'x');
    writeFileSync(join(taskDir, '.hidden'), 'x');
    symlinkSync(outside, join(taskDir, 'link'));

    const fence = newFence();
    await fdk.call({ quiet: true, writeFile: 'made', listTaskDir: true }, fence);
    await fdk.waitForOutput(`${fence}\n`, 'stderr');
    expect(fenced(fdk.stdout, fence)).toBe('taskdir=[.hidden,link,made,nested]\n');
    expect(existsSync(taskDir)).toBe(true);
    expect(readdirSync(taskDir)).toEqual([]);
    expect(readdirSync(outside)).toEqual(['keep']);

    const next = newFence();
    await fdk.call({ quiet: true, listTaskDir: true }, next);
    await fdk.waitForOutput(`taskdir=[]\n${next}\n`);
  });

  it('writes progress as `<fence> progress <n>` lines inside the fences, n an integer 0–100', async () => {
    const { fdk } = await startHot();
    const fence = newFence();
    await fdk.call({ quiet: true, lines: ['a'], progress: [-5, 42.4, 250, 7] }, fence);
    await fdk.waitForOutput(`${fence} progress 7\n${fence}\n`);
    expect(fenced(fdk.stdout, fence)).toBe(
      `a\n${fence} progress 0\n${fence} progress 42\n${fence} progress 100\n${fence} progress 7\n`,
    );
  });

  it('puts a fence or progress line on a line of its own after output without a final newline', async () => {
    const { fdk } = await startHot();
    const fence = newFence();
    await fdk.call({ quiet: true, noNewline: 'partial' }, fence);
    await fdk.waitForOutput(`partial\n${fence}\n`);
    expect(fenced(fdk.stdout, fence)).toBe('partial\n');

    const progress = script(`handle(async (payload, ctx) => {
      process.stdout.write('half');
      ctx.progress(50);
      process.stderr.write(Buffer.from('bytes'));
    });`);
    const other = (await startHot({ script: progress })).fdk;
    const next = newFence();
    await other.call('', next);
    await other.waitForOutput(`bytes\n${next}\n`, 'stderr');
    await other.waitForOutput(`${next}\n`);
    expect(fenced(other.stdout, next)).toBe(`half\n${next} progress 50\n`);
  });

  it('leaves output between tasks (a background timer) outside every fence', async () => {
    const { fdk } = await startHot();
    const fence = newFence();
    await fdk.call({ quiet: true, background: true, lines: ['started'] }, fence);
    // A tick after the task's end fence (one may also fall inside the task, on a slow machine).
    await waitFor('a tick after the task', async () =>
      /background tick \d+\n/.test(fdk.stdout.split(`${fence}\n`).pop() ?? ''),
    );

    const next = newFence();
    await fdk.call({ quiet: true, lines: ['second'] }, next);
    await fdk.waitForOutput(`${next}\n`, 'stderr');
    await waitFor('the end fence', async () => fenced(fdk.stdout, next) !== undefined);
    // The timer keeps printing during the task too: those lines are the task's, as in any process.
    expect(fenced(fdk.stdout, next)).toMatch(
      /^(background tick \d+\n)*second\n(background tick \d+\n)*$/,
    );
    const [before] = fdk.stdout.split(`${fence}\n`);
    expect(before).toBe('');
  });

  it('gives the handler the call’s task, attempt, deadline, the config and TASK_DIR', async () => {
    const ctxScript = script(`handle(async (payload, ctx) => {
      console.log(JSON.stringify({ payload, taskId: ctx.taskId, attempt: ctx.attempt,
        deadline: ctx.deadline.toISOString(), config: ctx.config, taskDir: ctx.taskDir }));
    });`);
    const { fdk, taskDir } = await startHot({ script: ctxScript, config: '{"size": 3}' });
    const fence = newFence();
    await fdk.call('héllo\nworld', fence, {
      'kiln-attempt': '2',
      'kiln-deadline': '2026-12-01T15:00:00Z',
    });
    await fdk.waitForOutput(`${fence}\n`, 'stderr');
    await waitFor('the end fence', async () => fenced(fdk.stdout, fence) !== undefined);
    expect(JSON.parse(fenced(fdk.stdout, fence)!)).toEqual({
      payload: 'héllo\nworld',
      taskId: 'task0123456789abcdef0123',
      attempt: 2,
      deadline: '2026-12-01T15:00:00.000Z',
      config: { size: 3 },
      taskDir,
    });

    const text = await startHot({ config: 'plain text, not JSON' });
    const next = newFence();
    await text.fdk.call({ quiet: true, printConfig: true }, next);
    await text.fdk.waitForOutput(`config="plain text, not JSON"\n${next}\n`);
  });

  it('takes one call at a time: a second one meanwhile gets a 503 and runs nothing', async () => {
    const gated = script(`const { existsSync } = require('node:fs');
    const { join } = require('node:path');
    handle(async (payload, ctx) => {
      console.log('running ' + payload);
      while (!existsSync(join(ctx.taskDir, 'go'))) await new Promise((r) => setTimeout(r, 10));
      return 'went';
    });`);
    const { fdk, taskDir } = await startHot({ script: gated });
    const fence = newFence();
    const first = fdk.call('first', fence);
    await fdk.waitForOutput('running first\n');

    const second = newFence();
    expect(await fdk.call('second', second)).toEqual({
      status: 503,
      body: { msg: 'A call is running: a hot container takes one at a time' },
    });
    writeFileSync(join(taskDir, 'go'), '');
    expect(await first).toEqual({ status: 200, body: { status: 'complete', msg: 'went' } });
    expect(fdk.stdout).not.toContain('second');
    expect(fdk.stdout).not.toContain(second);

    // The first task's TASK_DIR was emptied: the gate is shut again.
    writeFileSync(join(taskDir, 'go'), '');
    expect((await fdk.call('third', newFence())).status).toBe(200);
  });

  it('refuses what is not a well-formed POST /call with a 4xx and runs nothing', async () => {
    const { fdk } = await startHot();
    const fence = newFence();
    const refused = [
      await fdk.request('GET', '/call', {}, ''),
      await fdk.request('POST', '/other', {}, ''),
      await fdk.call('{}', fence, { 'kiln-log-fence': '' }),
      await fdk.call('{}', fence, { 'kiln-log-fence': 'has space' }),
      await fdk.call('{}', fence, { 'kiln-task-id': '' }),
      await fdk.call('{}', fence, { 'kiln-attempt': '0' }),
      await fdk.call('{}', fence, { 'kiln-deadline': 'soon' }),
    ];
    expect(refused.map((answer) => answer.status)).toEqual([405, 404, 400, 400, 400, 400, 400]);
    for (const answer of refused) expect(typeof answer.body.msg).toBe('string');
    expect(fdk.stdout).toBe('');
    expect(fdk.stderr).toBe('');
  });

  it('replaces a stale file at the socket path', async () => {
    const dir = tempDir('stale');
    const socketPath = join(dir, 'hot.sock');
    writeFileSync(socketPath, 'left from an earlier run');
    const { fdk } = await startHot({ socketPath });
    expect((await fdk.call({ quiet: true }, newFence())).status).toBe(200);
  });

  it('answers only once the task’s output is flushed, however slowly it is read', async () => {
    const { fdk } = await startHot();
    fdk.child.stdout!.pause();
    const fence = newFence();
    const lines = Array.from({ length: 10_000 }, (_, i) => `line ${i} `.padEnd(100, 'x'));
    let answered = false;
    const answer = fdk.call({ quiet: true, lines }, fence).finally(() => (answered = true));
    // 1 MB cannot fit in the pipe while this end does not read: no answer may come meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(answered).toBe(false);
    fdk.child.stdout!.resume();
    expect((await answer).body.status).toBe('complete');
    await fdk.waitForOutput(`${lines[9_999]}\n${fence}\n`);
    expect(fenced(fdk.stdout, fence)).toBe(lines.map((line) => `${line}\n`).join(''));
  });

  it('exits on SIGTERM (as a container’s PID 1 it would otherwise ignore it)', async () => {
    const { fdk } = await startHot();
    fdk.child.kill('SIGTERM');
    expect(await fdk.exited).toBe(143);
  });
});
