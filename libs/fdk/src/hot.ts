import { readdir, rm } from 'node:fs/promises';
import {
  IncomingHttpHeaders,
  IncomingMessage,
  Server,
  ServerResponse,
  createServer,
} from 'node:http';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Handler, TaskContext, clampProgress, errorMessage } from './context';
import { TaskOutput } from './output';

/** What every call of a hot container shares. */
export interface HotOptions {
  /** Where to listen (`KILN_HOT_SOCKET`); a file already there is removed first. */
  socketPath: string;
  /** The code's config, read once: it is the same for every task of the container. */
  config: unknown;
  /** `TASK_DIR`, emptied (its contents, not itself) after each task; `undefined`: nothing to empty. */
  taskDir: string | undefined;
  output: TaskOutput;
}

/** One task, from the call's headers (docs/hot.md "A task"). */
interface Call {
  taskId: string;
  attempt: number;
  deadline: Date;
  fence: string;
}

/** The answer of a call: `complete` or `error`, with the handler's message. */
export interface CallAnswer {
  status: 'complete' | 'error';
  msg: string;
}

/**
 * A fence and a task id are tokens: a fence with a space or a line break in it could not be told
 * from the task's output. Kiln sends 32 hex digits and a 24-character id.
 */
const TOKEN = /^[\w-]{1,128}$/;
const ATTEMPT = /^[1-9]\d{0,8}$/;

/**
 * Serves the hot contract (docs/hot.md) on `options.socketPath`: each `POST /call` is one task,
 * run between its fence lines, and answered once its output is flushed and `TASK_DIR` emptied.
 * Resolves once the server listens.
 *
 * One call at a time: the worker never sends a second call before the first is answered, so a
 * second concurrent one is a client's mistake and gets `503 {"msg": …}` without running (and
 * without fences). A call that is not `POST /call` gets a 404 or 405, one whose Kiln headers are
 * missing or malformed a 400, all with a JSON `{"msg": …}` and nothing run.
 */
export async function serveHot(handler: Handler, options: HotOptions): Promise<Server> {
  let busy = false;
  const server = createServer((req, res) => {
    void onRequest(req, res);
  });

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const refusal = refuse(req, busy);
    if (refusal) return refuseWith(req, res, refusal.status, refusal.msg, refusal.headers);
    const call = parseCall(req.headers);
    if (typeof call === 'string') return refuseWith(req, res, 400, call);
    busy = true;
    try {
      const payload = await readBody(req).catch(() => undefined);
      // The request broke off (the worker gave up on the call): there is nothing to run.
      if (payload === undefined) return;
      let result: CallAnswer;
      try {
        result = await runCall(handler, call, payload, options);
      } catch (error) {
        // The fences could not be written (STDOUT or STDERR closed): the contract is broken, and
        // a 500 says so; the worker replaces the container.
        return answer(res, 500, { msg: `kiln-fdk: ${errorMessage(error)}` });
      }
      answer(res, 200, result);
    } finally {
      // After the answer, in the same turn: the next call cannot have been read yet.
      busy = false;
    }
  }

  rmSync(options.socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // Open to every user: the worker connects as whichever host user it runs as, and the socket's
    // directory (bound into this container alone) is what keeps others out.
    server.listen({ path: options.socketPath, readableAll: true, writableAll: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

/** Why a request is not a call to run now, if it is not. */
function refuse(
  req: IncomingMessage,
  busy: boolean,
): { status: number; msg: string; headers?: Record<string, string> } | undefined {
  if (req.url !== '/call') {
    return { status: 404, msg: 'Not found: a hot container serves POST /call' };
  }
  if (req.method !== 'POST') {
    return { status: 405, msg: 'Method not allowed: POST /call', headers: { allow: 'POST' } };
  }
  if (busy) return { status: 503, msg: 'A call is running: a hot container takes one at a time' };
  return undefined;
}

/** The call's task, or what is wrong with its headers. */
function parseCall(headers: IncomingHttpHeaders): Call | string {
  const header = (name: string): string => {
    const value = headers[name];
    return typeof value === 'string' ? value.trim() : '';
  };
  const fence = header('kiln-log-fence');
  const taskId = header('kiln-task-id');
  const attempt = header('kiln-attempt');
  const deadline = new Date(header('kiln-deadline'));
  if (!TOKEN.test(fence)) return 'Kiln-Log-Fence must be 1–128 letters, digits, _ or -';
  if (!TOKEN.test(taskId)) return 'Kiln-Task-Id must be 1–128 letters, digits, _ or -';
  if (!ATTEMPT.test(attempt)) return 'Kiln-Attempt must be a whole number from 1';
  if (Number.isNaN(deadline.getTime())) return 'Kiln-Deadline must be a date (ISO 8601)';
  return { fence, taskId, attempt: Number(attempt), deadline };
}

/**
 * One task: its start fences, the handler, `TASK_DIR` emptied, its end fences. A handler that
 * throws ends the task `error` with its message; the container goes on serving.
 */
export async function runCall(
  handler: Handler,
  call: Call,
  payload: string,
  options: Pick<HotOptions, 'config' | 'taskDir' | 'output'>,
): Promise<CallAnswer> {
  const { output } = options;
  let running = true;
  const ctx: TaskContext = {
    taskId: call.taskId,
    attempt: call.attempt,
    deadline: call.deadline,
    config: options.config,
    taskDir: options.taskDir ?? process.cwd(),
    progress(percent: number) {
      const value = clampProgress(percent);
      // Past the end fence a progress line would be no task's: the worker would drop it anyway.
      if (!running || value === undefined) return;
      // A lost progress line costs only the progress: never an unhandled rejection.
      output.stdout.writeLine(`${call.fence} progress ${value}`).catch(() => undefined);
    },
  };
  await output.fence(call.fence);
  let result: CallAnswer;
  try {
    const msg = await handler(payload, ctx);
    result = { status: 'complete', msg: typeof msg === 'string' ? msg : '' };
  } catch (error) {
    result = { status: 'error', msg: errorMessage(error) };
  }
  running = false;
  if (options.taskDir !== undefined) await emptyTaskDir(options.taskDir, output);
  await output.fence(call.fence);
  return result;
}

/**
 * Removes what a task left in `dir` (its contents; the directory is a mount point). A symbolic
 * link is removed, never followed. What cannot be removed is said on STDERR, in the task's log:
 * it only harms the later tasks of the same code (docs/hot.md "Isolation").
 */
async function emptyTaskDir(dir: string, output: TaskOutput): Promise<void> {
  try {
    for (const name of await readdir(dir)) {
      await rm(join(dir, name), { recursive: true, force: true });
    }
  } catch (error) {
    await output.stderr.writeLine(
      `kiln-fdk: could not empty TASK_DIR ${dir}: ${errorMessage(error)}`,
    );
  }
}

/**
 * Answers a request that runs nothing, once its body is read: a keep-alive client may send its
 * next request on the same connection, which the server reads only past this one's body.
 */
function refuseWith(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  msg: string,
  headers?: Record<string, string>,
): void {
  req.resume();
  req.on('end', () => answer(res, status, { msg }, headers));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('the call was aborted')));
  });
}

function answer(
  res: ServerResponse,
  status: number,
  body: object,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
