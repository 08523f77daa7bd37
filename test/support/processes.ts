import { ChildProcess, ChildProcessByStdio, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { AddressInfo, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';

// Jest-free: the benchmarks (bench/, plain node) import this file too.

/**
 * The repository root: the nearest folder above this file with Kiln's package.json (this file
 * also runs compiled, from .kiln/bench/build/test/support).
 */
function findRoot(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'kiln') {
      return dir;
    }
  }
  throw new Error(`cannot find Kiln's package.json above ${__dirname}`);
}

export const ROOT = findRoot();
export const KILN_HOME = process.env.KILN_HOME ?? join(ROOT, '.kiln');
export const LOG_DIR = join(KILN_HOME, 'log', 'e2e');

/** Kiln's built processes, relative to the folder that holds dist/. */
export const ENTRY = {
  api: 'dist/apps/api/src/main.js',
  worker: 'dist/apps/worker/src/main.js',
  scheduler: 'dist/apps/scheduler/src/main.js',
} as const;

export type AppName = keyof typeof ENTRY;

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

export interface Launched {
  child: ChildProcessByStdio<null, Readable, Readable>;
  /** Resolves once the process and its output streams are closed and the log file is written. */
  logged: Promise<void>;
}

/**
 * Runs a Node script (`node [args] script`) with exactly `env`, its output going to `logFile`
 * (appended to, unless `append` is false).
 */
export function launch(
  script: string,
  options: {
    cwd: string;
    env: NodeJS.ProcessEnv;
    logFile: string;
    args?: string[];
    append?: boolean;
  },
): Launched {
  mkdirSync(dirname(options.logFile), { recursive: true });
  const log = createWriteStream(options.logFile, { flags: options.append === false ? 'w' : 'a' });
  const child = spawn(process.execPath, [...(options.args ?? []), script], {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const write = (chunk: Buffer): void => {
    log.write(chunk);
  };
  child.stdout.on('data', write);
  child.stderr.on('data', write);
  const logged = new Promise<void>((resolve) => child.once('close', () => log.end(resolve)));
  return { child, logged };
}

/** Starts one of Kiln's built processes, its output going to .kiln/log/e2e/<label>.log. */
export function startApp(
  app: AppName,
  env: Record<string, string>,
  label: string = app,
): ChildProcess {
  return launch(join(ROOT, ENTRY[app]), {
    cwd: ROOT,
    env: { ...process.env, ...env },
    logFile: join(LOG_DIR, `${label}.log`),
  }).child;
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
    await sleep(250);
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

/** The first port of `from`…`from + count - 1` free on 127.0.0.1 (for a known range). */
export async function freePortFrom(from: number, count: number): Promise<number> {
  for (let port = from; port < from + count; port++) {
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port in ${from}-${from + count - 1}`);
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
