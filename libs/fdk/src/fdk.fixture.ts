import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * The FDK's specs run it as Kiln does: in a process of its own, built (libs/fdk's own build, as
 * the package is published and as the test images hold it), started with the contract's
 * variables, and called on a real Unix socket.
 */

const REPO = resolve(__dirname, '../../..');

/** The handler of the kiln-test/node-hot image, which the specs drive through its payload. */
export const NODE_HOT_HANDLER = join(REPO, 'docker/test-images/node-hot/handler.js');

/**
 * Builds @kiln/fdk into `<dir>/node_modules/@kiln/fdk` and returns `<dir>/node_modules`, for
 * NODE_PATH: a handler's `require('@kiln/fdk')` finds it there.
 */
export function buildFdk(dir: string): string {
  const pkg = join(dir, 'node_modules/@kiln/fdk');
  mkdirSync(pkg, { recursive: true });
  copyFileSync(join(REPO, 'libs/fdk/package.json'), join(pkg, 'package.json'));
  execFileSync(process.execPath, [
    join(REPO, 'node_modules/typescript/bin/tsc'),
    '-p',
    join(REPO, 'libs/fdk/tsconfig.build.json'),
    '--outDir',
    join(pkg, 'dist'),
  ]);
  return join(dir, 'node_modules');
}

/** A fresh temporary directory. */
export const tempDir = (prefix: string): string =>
  mkdtempSync(join(tmpdir(), `kiln-fdk-${prefix}-`));

export interface Answer {
  status: number;
  /** The JSON body; a body that is not a JSON object, as `{ text }`. */
  body: Record<string, unknown>;
}

/** A handler's process, its STDOUT and STDERR collected. */
export class FdkProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  private constructor(
    readonly child: ChildProcess,
    readonly socketPath: string | undefined,
  ) {
    child.stdout!.setEncoding('utf8').on('data', (text: string) => (this.stdout += text));
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (this.stderr += text));
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  /** Starts `script` with node, NODE_PATH `nodePath` and exactly `env` besides. */
  static start(script: string, nodePath: string, env: Record<string, string>): FdkProcess {
    const child = spawn(process.execPath, [script], {
      env: { ...env, NODE_PATH: nodePath },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new FdkProcess(child, env.KILN_HOT_SOCKET);
  }

  /** Resolves once the socket answers (a 404 for a path that is not /call). */
  async ready(): Promise<void> {
    await waitFor('the FDK to listen', async () => {
      const answer = await this.request('GET', '/ready', {}, '').catch(() => undefined);
      return answer !== undefined;
    });
  }

  /** POST /call with the Kiln headers of task `taskId` and `fence` (overridden by `headers`). */
  call(
    payload: unknown,
    fence: string,
    headers: Record<string, string> = {},
    taskId = 'task0123456789abcdef0123',
  ): Promise<Answer> {
    return callHot(this.socketPath!, payload, fence, headers, taskId);
  }

  request(
    method: string,
    path: string,
    headers: Record<string, string>,
    body: string,
  ): Promise<Answer> {
    return requestSocket(this.socketPath!, method, path, headers, body);
  }

  /** Resolves once STDOUT (or STDERR) holds `text`. */
  async waitForOutput(text: string, stream: 'stdout' | 'stderr' = 'stdout'): Promise<void> {
    await waitFor(`${stream} to show ${JSON.stringify(text)}`, async () =>
      this[stream].includes(text),
    );
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}

function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * POST /call on the hot socket `socketPath`, as the worker calls it: task `taskId`, `fence`,
 * the payload (JSON unless a string), `headers` over the defaults.
 */
export function callHot(
  socketPath: string,
  payload: unknown,
  fence: string,
  headers: Record<string, string> = {},
  taskId = 'task0123456789abcdef0123',
): Promise<Answer> {
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
  return requestSocket(
    socketPath,
    'POST',
    '/call',
    {
      'kiln-task-id': taskId,
      'kiln-attempt': '1',
      'kiln-deadline': '2026-12-01T14:30:00.000Z',
      'kiln-log-fence': fence,
      'content-type': 'text/plain; charset=utf-8',
      ...headers,
    },
    body,
  );
}

/** One HTTP request on the Unix socket `socketPath`. */
export function requestSocket(
  socketPath: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: jsonObject(text) ?? { text } }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Polls `check` every 20 ms until it holds, for at most 60 s. */
export async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** What `stream` holds between the two lines `fence`, or `undefined` without both. */
export function fenced(stream: string, fence: string): string | undefined {
  const start = stream.indexOf(`${fence}\n`);
  if (start < 0) return undefined;
  const end = stream.indexOf(`${fence}\n`, start + fence.length + 1);
  if (end < 0) return undefined;
  return stream.slice(start + fence.length + 1, end);
}
