import { ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';

export const ROOT = join(__dirname, '..', '..');
export const KILN_HOME = process.env.KILN_HOME ?? join(ROOT, '.kiln');
export const LOG_DIR = join(KILN_HOME, 'log', 'e2e');

const ENTRY = {
  api: 'dist/apps/api/src/main.js',
  worker: 'dist/apps/worker/src/main.js',
  scheduler: 'dist/apps/scheduler/src/main.js',
} as const;

export type AppName = keyof typeof ENTRY;

/** Starts one of Kiln's built processes, its output going to .kiln/log/e2e/<label>.log. */
export function startApp(
  app: AppName,
  env: Record<string, string>,
  label: string = app,
): ChildProcess {
  mkdirSync(LOG_DIR, { recursive: true });
  const log = createWriteStream(join(LOG_DIR, `${label}.log`), { flags: 'a' });
  const child = spawn(process.execPath, [join(ROOT, ENTRY[app])], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  return child;
}

/** Stops a process with SIGTERM, then SIGKILL if it lingers. */
export async function stopApp(child: ChildProcess, graceMs = 30_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export async function waitForHealthy(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      if (res.status === 200) return;
      last = `${res.status} ${await res.text()}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${url} not healthy after ${timeoutMs} ms: ${last}`);
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Starts a worker of its own (`env` names its `KILN_WORKER_ID` and cluster) on a health port of
 * its own, and resolves once its `/healthz` answers 200: Postgres, Redis and Docker reached, its
 * earlier life recovered. Rejects if the worker exits first.
 */
export async function startWorker(
  env: Record<string, string>,
  label: string,
  timeoutMs = 60_000,
): Promise<ChildProcess> {
  const port = await freePort();
  const child = startApp('worker', { ...env, KILN_WORKER_HEALTH_PORT: String(port) }, label);
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) =>
      reject(new Error(`worker ${label} exited (${signal ?? code}) before it was healthy`)),
    ),
  );
  await Promise.race([waitForHealthy(`http://127.0.0.1:${port}/healthz`, timeoutMs), exited]);
  exited.catch(() => undefined);
  return child;
}
