import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'node:http';
import { lstat } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ContainerExit } from '@kiln/docker';
import { FrameDemuxer } from '@kiln/docker';
import { HOT_SOCKET_NAME } from '../container-contract';
import { FencedOutput } from './fenced-output';

/** How a hot container answered a task (docs/hot.md, "A task"). */
export interface HotAnswer {
  status: 'complete' | 'error';
  msg: string;
}

/** The container broke the contract, or ended: it is never given another task. */
export class HotContainerBroke extends Error {
  override name = 'HotContainerBroke';
}

/** What a hot container needs of the engine (DockerEngine fits; tests may pass another). */
export interface HotEngine {
  attach(id: string): Promise<NodeJS.ReadWriteStream>;
  start(id: string): Promise<void>;
  wait(id: string): Promise<ContainerExit>;
  kill(id: string): Promise<void>;
}

/** What is sent with each task. */
export interface HotCall {
  taskId: string;
  attempt: number;
  deadline: Date;
  fence: string;
  payload: string;
}

const MSG_CHARS = 1000;
const ANSWER_BYTES = 64 * 1024;
const READY_POLL_MS = 20;
/** How long a dropped connection waits to learn whether the container exited. */
const EXIT_WAIT_MS = 5000;
/**
 * A call still unanswered this long after the task's deadline is dropped: the worker kills the
 * container at the deadline, and this bounds the call should that kill fail.
 */
const PAST_DEADLINE_MS = 15_000;

/**
 * One hot container, created but not started: the worker's side of the contract. `start` runs it
 * until it listens; `call` hands it one task; `exit` settles when it stops, however it stops.
 * Each task has a connection of its own, and the socket is looked at with `lstat` before every
 * connection: a socket, not a link to elsewhere on the worker's host.
 */
export class HotContainer {
  readonly output = new FencedOutput();
  /** Settles when the container has exited (or could not be waited for). */
  exit!: Promise<ContainerExit>;
  exited: ContainerExit | undefined;
  tasksRun = 0;
  lastUsed = Date.now();
  private readonly socketPath: string;

  constructor(
    private readonly engine: HotEngine,
    readonly id: string,
    readonly key: string,
    /** Host directories: `files` (bound read-only), `socket` (where it listens). */
    readonly dirs: { files: string; socket: string },
    readonly name: string,
  ) {
    this.socketPath = join(dirs.socket, HOT_SOCKET_NAME);
  }

  /**
   * Starts it and waits until it listens, at most `readyMs`. Throws with the reason (and the last
   * lines it printed) when it exits first or does not listen in time.
   */
  async start(readyMs: number, socketShownAs: string): Promise<void> {
    const io = await this.engine.attach(this.id);
    pipeline(io, new FrameDemuxer(), this.output).catch(() => undefined);
    await this.engine.start(this.id);
    io.end();
    this.exit = this.engine.wait(this.id).then(
      (exit) => (this.exited = exit),
      () => (this.exited = { exitCode: -1, oomKilled: false }),
    );
    const deadline = Date.now() + readyMs;
    while (!this.exited) {
      if (await this.listening()) return;
      if (Date.now() >= deadline) {
        throw new HotContainerBroke(
          `it did not listen on ${socketShownAs} within ${Math.round(readyMs / 1000)} s${this.lastWords()}`,
        );
      }
      await Promise.race([sleep(READY_POLL_MS), this.exit]);
    }
    throw new HotContainerBroke(
      `it exited with code ${this.exited.exitCode} before it listened${this.lastWords()}`,
    );
  }

  /**
   * Hands it one task; resolves with its answer. Rejects with {@link HotContainerBroke} when it
   * answers outside the contract, drops the connection or exits meanwhile.
   */
  async call(call: HotCall): Promise<HotAnswer> {
    if (this.exited) throw this.exitedError();
    await this.checkSocket();
    const body = Buffer.from(call.payload, 'utf8');
    const answer = new Promise<HotAnswer>((resolve, reject) => {
      const req = request(
        {
          agent: false,
          socketPath: this.socketPath,
          method: 'POST',
          path: '/call',
          headers: {
            'Kiln-Task-Id': call.taskId,
            'Kiln-Attempt': String(call.attempt),
            'Kiln-Deadline': call.deadline.toISOString(),
            'Kiln-Log-Fence': call.fence,
            'Content-Type': 'text/plain; charset=utf-8',
            'Content-Length': body.length,
          },
        },
        (res) => {
          const parts: Buffer[] = [];
          let size = 0;
          res.on('data', (part: Buffer) => {
            size += part.length;
            if (size > ANSWER_BYTES) {
              res.destroy();
              reject(new HotContainerBroke(`its answer is larger than ${ANSWER_BYTES} bytes`));
            } else parts.push(part);
          });
          res.on('error', (error) =>
            reject(new HotContainerBroke(`its answer broke off: ${error.message}`)),
          );
          res.on('end', () => {
            try {
              resolve(parseAnswer(res.statusCode ?? 0, Buffer.concat(parts).toString('utf8')));
            } catch (error) {
              reject(error instanceof Error ? error : new Error(String(error)));
            }
          });
        },
      );
      const late = setTimeout(
        () => req.destroy(new Error('no answer long after the task deadline')),
        Math.max(0, call.deadline.getTime() - Date.now()) + PAST_DEADLINE_MS,
      );
      req.on('close', () => clearTimeout(late));
      req.on('error', (error) => {
        // A container that exits drops its connections first: say it exited, when it did.
        const exitedSoon = Promise.race([this.exit, sleep(EXIT_WAIT_MS)]);
        void exitedSoon.then(() =>
          reject(
            this.exited
              ? this.exitedError()
              : new HotContainerBroke(
                  `it closed the connection without an answer (${error.message})`,
                ),
          ),
        );
      });
      req.end(body);
    });
    const exited = this.exit.then(() => {
      throw this.exitedError();
    });
    exited.catch(() => undefined); // the race hears it; once answered, nobody needs to
    return Promise.race([answer, exited]);
  }

  /** Kills it; its `exit` settles. */
  async kill(): Promise<void> {
    await this.engine.kill(this.id);
  }

  private async listening(): Promise<boolean> {
    try {
      await this.checkSocket();
    } catch {
      return false;
    }
    return new Promise((resolve) => {
      const socket = connect(this.socketPath);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
  }

  /** The socket must be a socket: a symlink could point the worker at any socket of its host. */
  private async checkSocket(): Promise<void> {
    const stat = await lstat(this.socketPath).catch(() => undefined);
    if (!stat?.isSocket()) {
      throw new HotContainerBroke(
        stat ? 'its socket path is not a socket (a link or a file)' : 'its socket is gone',
      );
    }
  }

  private exitedError(): HotContainerBroke {
    const exit = this.exited!;
    const how = exit.oomKilled ? 'was killed: out of memory' : `exited with code ${exit.exitCode}`;
    return new HotContainerBroke(`The hot container ${how} during the task`);
  }

  private lastWords(): string {
    const stray = this.output.stray;
    return stray ? `; its last output: ${stray.slice(-300)}` : '';
  }
}

/** `{"status": "complete"|"error", "msg": "…"}` with a 200, or a broken contract. */
export function parseAnswer(statusCode: number, body: string): HotAnswer {
  if (statusCode !== 200) {
    throw new HotContainerBroke(`it answered HTTP ${statusCode}, not 200`);
  }
  let answer: unknown;
  try {
    answer = JSON.parse(body);
  } catch {
    throw new HotContainerBroke(`its answer is not JSON: ${JSON.stringify(body.slice(0, 100))}`);
  }
  const { status, msg } = (answer ?? {}) as { status?: unknown; msg?: unknown };
  if (status !== 'complete' && status !== 'error') {
    throw new HotContainerBroke(
      `its answer's status is ${JSON.stringify(status)}, not "complete" or "error"`,
    );
  }
  return { status, msg: typeof msg === 'string' ? msg.slice(0, MSG_CHARS) : '' };
}
