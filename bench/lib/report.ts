import { cpus, totalmem } from 'node:os';
import { Infra } from './env';
import { Deadline, round } from './procs';

/** One line of a benchmark's table. */
export interface Row {
  metric: string;
  value: string;
  target?: string;
  /** Whether the target is met (undefined: no target). */
  met?: boolean;
}

export interface BenchContext {
  infra: Infra;
  /** Commit of the code measured (with "+uncommitted changes" when apps/libs differ from it). */
  commit: string;
  deadline: Deadline;
  profile: boolean;
}

export interface BenchResult {
  name: string;
  startedAt: string;
  seconds: number;
  commit: string;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string };
  params: Record<string, unknown>;
  rows: Row[];
  details: Record<string, unknown>;
  /** Share of the machine's CPU busy with other work just before the benchmark started. */
  machineBusyBefore?: number;
}

/** The fields every result starts with: which benchmark, when and for how long, on what. */
export function resultHeader(
  name: string,
  ctx: BenchContext,
  startedAt: Date,
): Pick<BenchResult, 'name' | 'startedAt' | 'seconds' | 'commit' | 'machine'> {
  return {
    name,
    startedAt: startedAt.toISOString(),
    seconds: round((Date.now() - startedAt.getTime()) / 1000),
    commit: ctx.commit,
    machine: machine(),
  };
}

export function machine(): BenchResult['machine'] {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  };
}

export function printTable(title: string, rows: Row[]): void {
  const cells = rows.map((row) => [
    row.metric,
    row.value,
    row.target ?? '',
    row.met === undefined ? '' : row.met ? 'met' : 'MISSED',
  ]);
  const header = ['metric', 'value', 'target', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]): string =>
    c
      .map((v, i) => v.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  console.log(`\n== ${title}`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(line(c));
}

export const fmt = (value: number, digits = 0): string =>
  value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
