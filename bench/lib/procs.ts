import { ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { AppName, ENTRY, sleep, stopApp } from '../../test/support/processes';
import { APP_DIR, BENCH_HOME, LOG_DIR } from './env';

// ---------------------------------------------------------------- cleanup ----

interface Cleanup {
  label: string;
  fn: () => Promise<void> | void;
}

const cleanups: Cleanup[] = [];

/** Registers something to undo; cleanups run last-in first-out, also on Ctrl-C. */
export function defer(label: string, fn: () => Promise<void> | void): void {
  cleanups.push({ label, fn });
}

let draining: Promise<void> | undefined;

/**
 * Runs (and forgets) every registered cleanup, each bounded to a minute; errors are printed. One
 * drain at a time: a Ctrl-C during the normal cleanup joins it instead of racing it (which could
 * delete Redis keys while the API is still answering).
 */
export function runCleanups(): Promise<void> {
  draining ??= drain().finally(() => (draining = undefined));
  return draining;
}

async function drain(): Promise<void> {
  while (cleanups.length > 0) {
    const { label, fn } = cleanups.pop()!;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(fn),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('took more than 60 s')), 60_000);
        }),
      ]);
    } catch (error) {
      console.error(`[bench] cleanup "${label}" failed: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }
}

let interrupted = false;

/** Ctrl-C / SIGTERM: clean up (stop what was started, drop data), then exit 130. */
export function installSignalHandlers(): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (interrupted) {
        console.error('[bench] second signal: exiting without finishing the cleanup');
        process.exit(130);
      }
      interrupted = true;
      console.error(`[bench] ${signal}: cleaning up (send it again to exit at once)`);
      void runCleanups().finally(() => process.exit(130));
    });
  }
}

export function isInterrupted(): boolean {
  return interrupted;
}

/** A time limit that loops check, so that nothing keeps running past it. */
export class Deadline {
  private readonly end: number;

  constructor(
    private readonly label: string,
    ms: number,
  ) {
    this.end = Date.now() + ms;
  }

  remainingMs(): number {
    return this.end - Date.now();
  }

  check(): void {
    if (interrupted) throw new Error('interrupted');
    if (Date.now() > this.end) throw new Error(`${this.label}: time limit reached`);
  }
}

// ---------------------------------------------------------------- processes ----

export interface App {
  label: string;
  child: ChildProcess;
  /** Resolves when the process printed a line matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
  /** The last few KB it printed, for error messages. */
  tail(): string;
}

/**
 * Starts one of Kiln's built processes from the dist/ snapshot (see `snapshotDist`), its output in
 * .kiln/bench/log/<label>.log. KILN_* variables of the caller's environment are not passed on, so
 * only `env` configures it. `profile` records a CPU profile into .kiln/bench/profiles/<label>.cpuprofile
 * (see cpu-profiler.ts; written when the process is stopped).
 */
export function startApp(
  app: AppName,
  env: Record<string, string>,
  label: string,
  profile = false,
): App {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !name.startsWith('KILN_') || name === 'KILN_HOME',
    ),
  );
  const args: string[] = [];
  const extraEnv: Record<string, string> = {};
  if (profile) {
    const dir = join(BENCH_HOME, 'profiles');
    mkdirSync(dir, { recursive: true });
    args.push('-r', join(__dirname, 'cpu-profiler.js'));
    extraEnv.KILN_BENCH_CPUPROFILE = join(dir, `${label}.cpuprofile`);
  }
  // The process writes its output straight into its log file, as it would into a file or a
  // journal in production: no relay through this process, whose CPU would count against Kiln's
  // (its JSON lines are megabytes a second on the ingest path).
  const logFile = join(LOG_DIR, `${label}.log`);
  mkdirSync(LOG_DIR, { recursive: true });
  const fd = openSync(logFile, 'w');
  const child = spawn(process.execPath, [...args, join(APP_DIR, ENTRY[app])], {
    cwd: APP_DIR,
    env: { ...inherited, ...env, ...extraEnv },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const logged = new Promise<void>((resolve) => child.once('close', () => resolve()));
  /** The last 16 KiB of the log file. */
  const output = (): string => {
    try {
      const size = statSync(logFile).size;
      const start = Math.max(0, size - 16_384);
      const buffer = Buffer.alloc(size - start);
      const read = openSync(logFile, 'r');
      try {
        readSync(read, buffer, 0, buffer.length, start);
      } finally {
        closeSync(read);
      }
      return buffer.toString('utf8');
    } catch {
      return '';
    }
  };

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await stopApp(child, 30_000);
      await logged;
    })());
  defer(`stop ${label}`, stop);

  return {
    label,
    child,
    tail: output,
    stop,
    async waitFor(pattern, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        // The whole line may be further back than the tail when much followed it: read it all.
        if (pattern.test(readFileSync(logFile, 'utf8'))) return;
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`${label} exited (${child.exitCode ?? child.signalCode}):\n${output()}`);
        }
        if (Date.now() > deadline) {
          throw new Error(`${label} did not print ${pattern} in ${timeoutMs} ms:\n${output()}`);
        }
        await sleep(100);
      }
    },
  };
}

// ---------------------------------------------------------------- CPU accounting ----

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** Which processes a CPU sample is broken down into (by pid for Kiln's, by name for services). */
export type CpuGroups = Record<number, string>;

const BY_NAME: Record<string, string> = {
  postgres: 'postgres',
  'redis-server': 'redis',
  dockerd: 'dockerd',
  containerd: 'containerd',
  'containerd-shim': 'containerd',
  'containerd-shim-runc-v2': 'containerd',
  runc: 'containerd',
};

function groupOf(pid: number, comm: string): string {
  if (pid === process.pid) return 'bench client';
  // Init's cutime/cstime: the CPU of exited processes it reaped — containers, runc, shims.
  if (pid === 1) return 'exited processes (containers, runc, shims)';
  if (/^(kworker|ksoftirqd|kswapd|jbd2|kcompactd|kdamond)/.test(comm)) return 'kernel threads';
  return BY_NAME[comm] ?? 'other processes';
}

export interface CpuSample {
  at: number;
  /** Seconds of CPU per group, for processes alive at the sample. */
  groups: Map<number, { group: string; seconds: number }>;
  /** Busy and total seconds of the whole machine (/proc/stat). */
  busy: number;
  total: number;
}

export function sampleCpu(groups: CpuGroups): CpuSample {
  const sample: CpuSample = { at: performance.now(), groups: new Map(), busy: 0, total: 0 };
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' ');
    // fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
    const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    const group = groups[pid] ?? groupOf(pid, comm);
    sample.groups.set(pid, { group, seconds: ticks / CLOCK_TICKS });
  }
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1);
  const values = cpu.map(Number);
  const idle = values[3] + values[4];
  const total = values.slice(0, 8).reduce((a, b) => a + b, 0);
  sample.busy = (total - idle) / CLOCK_TICKS;
  sample.total = total / CLOCK_TICKS;
  return sample;
}

/**
 * CPU seconds each group used between two samples, plus the machine's busy time; "unattributed"
 * is CPU of processes that came and went in between (containers, runc, short-lived tools).
 */
export function cpuBetween(before: CpuSample, after: CpuSample): Record<string, number> {
  const used: Record<string, number> = {};
  for (const [pid, now] of after.groups) {
    const then = before.groups.get(pid);
    const delta = now.seconds - (then && then.group === now.group ? then.seconds : 0);
    if (delta > 0) used[now.group] = (used[now.group] ?? 0) + delta;
  }
  const attributed = Object.values(used).reduce((a, b) => a + b, 0);
  const result: Record<string, number> = {};
  for (const [group, seconds] of Object.entries(used).sort((a, b) => b[1] - a[1])) {
    result[group] = round(seconds, 2);
  }
  const busy = after.busy - before.busy;
  result['unattributed'] = round(Math.max(0, busy - attributed), 2);
  result['machine busy'] = round(busy, 2);
  result['machine capacity'] = round(after.total - before.total, 2);
  return result;
}

/** VmRSS or VmHWM of a process, MiB (0 when the process is gone). */
export function rssMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return 0;
  }
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return match ? Number(match[1]) / 1024 : 0;
}

export function round(value: number, digits = 1): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** Share of the machine's CPU in use over `ms` (0–1). */
export async function machineBusy(ms = 2000): Promise<number> {
  const before = sampleCpu({});
  await sleep(ms);
  const after = sampleCpu({});
  return (after.busy - before.busy) / Math.max(0.001, after.total - before.total);
}

/**
 * Waits (up to `maxSeconds`) until the machine is mostly idle, since other work on it — an e2e
 * run, a build — skews every number; returns the share of CPU that was busy when it started.
 */
export async function waitForQuiet(maxSeconds: number, threshold = 0.25): Promise<number> {
  const end = Date.now() + maxSeconds * 1000;
  let busy = await machineBusy();
  while (busy > threshold && Date.now() < end && !interrupted) {
    console.log(
      `[bench] the machine is ${Math.round(busy * 100)}% busy with other work; waiting for it to calm down`,
    );
    await sleep(5000);
    busy = await machineBusy();
  }
  if (busy > threshold) {
    console.log(
      `[bench] WARNING: starting with the machine ${Math.round(busy * 100)}% busy: noisy numbers`,
    );
  }
  return busy;
}
