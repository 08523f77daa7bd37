/**
 * `@kiln/fdk`: Kiln's function development kit for Node, with no dependencies. `handle(fn)` runs
 * `fn` as a hot container when Kiln started the container hot (`KILN_HOT_SOCKET` set; docs/hot.md)
 * and once, as a cold task, otherwise: one image serves both ways.
 *
 * ```ts
 * import { handle } from '@kiln/fdk';
 *
 * handle(async (payload, ctx) => {
 *   const { url } = JSON.parse(payload);
 *   ctx.progress(50);
 *   return `resized ${url}`;
 * });
 * ```
 */
import { ColdOptions, runCold } from './cold';
import { Handler, errorMessage, readConfig } from './context';
import { fdkEnvironment } from './env';
import { serveHot } from './hot';
import { TaskOutput } from './output';

export type { Handler, TaskContext } from './context';

/**
 * Runs `handler` for Kiln. Hot: listens on `KILN_HOT_SOCKET` and runs one task per call, one at a
 * time, until the container is stopped (SIGTERM or SIGINT end the process). Cold: reads
 * `PAYLOAD_FILE`, runs the handler once and exits 0, or 1 with the error's message on STDERR.
 * A hot container that cannot start (an unreadable `CONFIG_FILE`, a socket it cannot create)
 * says why on STDERR and exits 1.
 */
export function handle(handler: Handler): void {
  void run(handler).catch((error: unknown) => {
    process.stderr.write(`kiln-fdk: ${errorMessage(error)}\n`);
    exit(1);
  });
}

async function run(handler: Handler): Promise<void> {
  const env = fdkEnvironment();
  const config = readConfig(env.configFile);
  if (env.hotSocket === undefined) {
    const options: ColdOptions = { ...env, config };
    return exit(await runCold(handler, options));
  }
  const server = await serveHot(handler, {
    socketPath: env.hotSocket,
    config,
    taskDir: env.taskDir,
    output: new TaskOutput(process.stdout, process.stderr),
  });
  // Node as a container's PID 1 has no default action for these: without a handler a stop waits
  // for Docker's SIGKILL.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      server.close();
      exit(128 + (signal === 'SIGTERM' ? 15 : 2));
    });
  }
}

/**
 * Exits with `code` once STDOUT and STDERR are flushed: a cold task's last lines must reach its
 * log, and timers the handler left behind must not keep the process alive.
 */
function exit(code: number): void {
  let pending = 2;
  const done = (): void => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}
