import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_HOME } from './env';

export const PROFILE_DIR = join(BENCH_HOME, 'profiles');

/** CLOCK_MONOTONIC in µs: the clock of V8's CPU profiles, the same in every process. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export interface Window {
  startUs: number;
  endUs: number;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  /** Wall time covered by the windows, ms. */
  windowMs: number;
  /** CPU time sampled in the windows (everything but idle), ms. */
  busyMs: number;
  /** Self time by where the code lives: an npm package, a Kiln folder, Node's core, GC, … (ms). */
  byOrigin: Record<string, number>;
  /**
   * The same, with native code (socket writes, JSON, RegExp, …) and Node's core (streams, net)
   * charged to the package that called into them.
   */
  byOriginNativeToCaller: Record<string, number>;
  /** Time by the innermost Kiln function on the stack (what Kiln code it was done for). */
  byKilnFunction: Record<string, number>;
  /** The functions with the most self time. */
  topFunctions: { fn: string; ms: number }[];
}

function originOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(program)') return '(program)';
    return 'native (socket writes, JSON, RegExp, …)';
  }
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1];
  const kiln = /\/dist\/((?:apps|libs)\/[^/]+)\//.exec(url);
  if (kiln) return `kiln ${kiln[1]}`;
  if (url.startsWith('node:')) return 'node core';
  return 'other';
}

/**
 * Reads .kiln/bench/profiles/<label>.cpuprofile (written by cpu-profiler.ts) and sums the self
 * time of the samples inside `windows` (all of them when none is given).
 */
export function summarizeProfile(
  label: string,
  windows: Window[] = [],
): ProfileSummary | undefined {
  const file = join(PROFILE_DIR, `${label}.cpuprofile`);
  if (!existsSync(file)) return undefined;
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parents.set(child, node.id);
  }
  const byOrigin = new Map<string, number>();
  const byCaller = new Map<string, number>();
  const byKiln = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, us: number): void => {
    map.set(key, (map.get(key) ?? 0) + us);
  };
  const byFunction = new Map<string, number>();
  let t = profile.startTime;
  const inside = (at: number): boolean =>
    windows.length === 0 || windows.some((w) => at >= w.startUs && at <= w.endUs);
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (!inside(t)) continue;
    const node = nodes.get(profile.samples[i]);
    if (!node) continue;
    const origin = originOf(node.callFrame);
    add(byOrigin, origin, delta);
    if (origin !== '(idle)') {
      // Walk up the stack: the first JS frame for native code, the first Kiln frame for Kiln.
      let caller = origin.startsWith('native') || origin === 'node core' ? undefined : origin;
      let kilnFrame: string | undefined;
      for (let id: number | undefined = node.id; id !== undefined; id = parents.get(id)) {
        const frame = nodes.get(id)!.callFrame;
        if (!frame.url) continue;
        if (!frame.url.startsWith('node:')) caller ??= originOf(frame);
        if (origin !== 'GC' && /\/dist\/(apps|libs)\//.test(frame.url)) {
          kilnFrame = `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*\/dist\//, '')}`;
          break;
        }
      }
      add(byCaller, caller ?? origin, delta);
      add(byKiln, kilnFrame ?? '(no Kiln function on the stack)', delta);
      const { functionName, url, lineNumber } = node.callFrame;
      const where = url
        ? ` ${url.replace(/^.*\/(node_modules|dist)\//, '')}:${lineNumber + 1}`
        : '';
      const fn = `${functionName || '(anonymous)'}${where}`;
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + delta);
    }
  }
  const ms = (us: number): number => Math.round(us / 100) / 10;
  const sorted = (map: Map<string, number>, limit = 40): Record<string, number> =>
    Object.fromEntries(
      [...map.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, limit)
        .map(([key, us]) => [key, ms(us)]),
    );
  const windowMs =
    windows.length > 0 ? windows.reduce((sum, w) => sum + (w.endUs - w.startUs), 0) / 1000 : NaN;
  const idle = byOrigin.get('(idle)') ?? 0;
  const busy = [...byOrigin.values()].reduce((a, b) => a + b, 0) - idle;
  return {
    file,
    windowMs: Math.round(windowMs),
    busyMs: ms(busy),
    byOrigin: sorted(byOrigin),
    byOriginNativeToCaller: sorted(byCaller),
    byKilnFunction: sorted(byKiln, 20),
    topFunctions: [...byFunction.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 25)
      .map(([fn, us]) => ({ fn, ms: ms(us) })),
  };
}
