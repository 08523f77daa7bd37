/**
 * `npm run bench [-- <name>…]`: runs Kiln's benchmarks one after the other (all of them by
 * default) against the built code (a snapshot of dist/), prints a table per benchmark and writes
 * each one's results to .kiln/bench/<name>.json. See docs/benchmarks.md.
 *
 * Each benchmark starts from an empty `kiln_bench` database (KILN_BENCH_DB) and its own Redis
 * prefix, API port (18500+), worker id; everything it started or wrote is removed afterwards,
 * also on failure or Ctrl-C. KILN_BENCH_PROFILE=1 runs Kiln's processes under `node --prof`.
 * Before each benchmark it waits up to KILN_BENCH_QUIET_WAIT seconds (300) for the machine to be
 * mostly idle, since other work on it skews the numbers.
 */
import { backlog } from './backlog';
import { cli } from './cli';
import { capacity } from './capacity';
import { costs } from './costs';
import { dispatch } from './dispatch';
import { fairness } from './fairness';
import { followers } from './followers';
import { hot } from './hot';
import { ingest } from './ingest';
import { limits } from './limits';
import { observability } from './observability';
import { pgbouncer } from './pgbouncer';
import { reads } from './reads';
import { retention } from './retention';
import { schedules } from './schedules';
import { ui } from './ui';
import { upload } from './upload';
import { webhooks } from './webhooks';
import {
  ensureDatabase,
  loadInfra,
  migrate,
  resetSchema,
  setting,
  snapshotDist,
  writeResult,
} from './lib/env';
import { closeConnections } from './lib/http';
import {
  Deadline,
  defer,
  installSignalHandlers,
  round,
  runCleanups,
  waitForQuiet,
} from './lib/procs';
import { BenchContext, BenchResult, printTable } from './lib/report';

const BENCHMARKS: Record<
  string,
  { run: (ctx: BenchContext) => Promise<BenchResult>; minutes: number }
> = {
  ingest: { run: ingest, minutes: 10 },
  dispatch: { run: dispatch, minutes: 20 },
  backlog: { run: backlog, minutes: 25 },
  schedules: { run: schedules, minutes: 10 },
  upload: { run: upload, minutes: 15 },
  cli: { run: cli, minutes: 10 },
  // About 12.5 min, 11.5 of them the noisy-neighbour case (webhooks-noisy.ts): B alone 1 min, B
  // beside A 10 min and 30 s after.
  webhooks: { run: webhooks, minutes: 20 },
  fairness: { run: fairness, minutes: 10 },
  limits: { run: limits, minutes: 15 },
  // About 10 min: loading 1,000,000 old tasks 2-3, seven windows of 15 s with a scheduler start
  // and a clean-up each, the rest of the purge 2-5.
  retention: { run: retention, minutes: 30 },
  followers: { run: followers, minutes: 10 },
  // Four routes × 2 servers × 2 rounds × 10 s, and the set-up: about 3 min.
  reads: { run: reads, minutes: 10 },
  // 500 cold tasks and the set-up: about 2 min on a quiet machine.
  costs: { run: costs, minutes: 10 },
  // pgbench 15 s and redis-benchmark's two runs, with pgbench's initialisation: about 30 s.
  capacity: { run: capacity, minutes: 10 },
  // Two Kilns (direct, through PgBouncer) side by side: ingest 2 × 10,000 tasks and dispatch
  // 2 × 200 tasks each way, about 5 min.
  pgbouncer: { run: pgbouncer, minutes: 15 },
  // Raw Bull 20,000 jobs (~10 s), 300 cold tasks (~1-2 min at 3-5/s), 20,500 hot ones (~30 s at
  // the 1,000/s bar, minutes if far below it), 20 s of offered load, 1,000 invokes (~30 s), 20 warm
  // containers and the set-up: about 5 min on a quiet machine.
  hot: { run: hot, minutes: 20 },
  // Twelve rounds, each a fresh Kiln (about 10 s to start and stop), 50,000 tasks created (2-3 s)
  // and 100 container tasks run (8-15 s on these VMs' engines): about 6 min.
  observability: { run: observability, minutes: 20 },
  // Writing 1,000,000 tasks and VACUUM ANALYZE take most of it; Chromium starts once.
  ui: { run: ui, minutes: 15 },
};

async function main(): Promise<number> {
  const names = process.argv.slice(2).filter((arg) => !arg.startsWith('-'));
  const unknown = names.filter((name) => !(name in BENCHMARKS));
  if (unknown.length > 0) {
    console.error(
      `unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(BENCHMARKS).join(', ')}`,
    );
    return 2;
  }
  const selected = names.length > 0 ? names : Object.keys(BENCHMARKS);
  installSignalHandlers();
  const infra = loadInfra();
  const commit = snapshotDist();
  await ensureDatabase(infra.databaseUrl);
  console.log(
    `[bench] ${selected.join(', ')} on ${commit}, database ${new URL(infra.databaseUrl).pathname.slice(1)}`,
  );

  const profile = process.env.KILN_BENCH_PROFILE === '1';
  const results: BenchResult[] = [];
  let failed = 0;
  for (const name of selected) {
    const { run, minutes } = BENCHMARKS[name];
    const limit = setting('KILN_BENCH_MINUTES', minutes);
    const deadline = new Deadline(name, limit * 60_000);
    console.log(`\n[bench] ${name} (at most ${limit} min)`);
    await resetSchema(infra.databaseUrl);
    // Registered first, so it runs last: after everything the benchmark started has stopped.
    defer(`empty the ${new URL(infra.databaseUrl).pathname.slice(1)} database`, () =>
      resetSchema(infra.databaseUrl),
    );
    migrate(infra);
    const busy = await waitForQuiet(setting('KILN_BENCH_QUIET_WAIT', 300));
    let timer: NodeJS.Timeout | undefined;
    try {
      const result = await Promise.race([
        run({ infra, commit, deadline, profile }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`${name}: no result after ${limit} min`)),
            limit * 60_000 + 30_000,
          );
        }),
      ]);
      result.machineBusyBefore = round(busy, 2);
      // A profiled run is slower: its results do not replace the plain run's.
      const path = writeResult(profile ? `${name}-profiled` : name, result);
      results.push(result);
      printTable(`${name} (${result.seconds} s) → ${path}`, result.rows);
    } catch (error) {
      failed++;
      console.error(`[bench] ${name} failed: ${(error as Error).stack ?? String(error)}`);
    } finally {
      clearTimeout(timer);
      console.log(`[bench] ${name}: cleaning up`);
      await runCleanups();
    }
  }
  closeConnections();
  if (results.length > 1) {
    console.log('\n== summary');
    for (const result of results) {
      printTable(
        result.name,
        result.rows.filter((row) => row.target),
      );
    }
  }
  return failed > 0 ? 1 : 0;
}

main()
  .then((code) => process.exit(code))
  .catch(async (error: unknown) => {
    console.error(`[bench] ${(error as Error).stack ?? String(error)}`);
    await runCleanups();
    process.exit(1);
  });
