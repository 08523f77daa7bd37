/**
 * webhooks, noisy neighbour: do one project's dead endpoints hold up another project's webhooks,
 * and what do they cost the scheduler? Project A has 20 subscriptions to `task.complete` that
 * never answer — 10 on a loopback port that accepts connections and stalls, 10 on one that accepts
 * and drops them at once — and completes 20 tasks a second; project B completes 5 a second, one
 * subscription on a healthy loopback receiver. Completions are the same UPDATEs as the fan-out
 * case (./lib/webhook-load.ts).
 *
 * 1. B alone for KILN_BENCH_NOISY_BASELINE_SECONDS (60): the baseline, in the same run.
 * 2. B beside A for KILN_BENCH_NOISY_SECONDS (600; 0 skips the whole case), then 30 s more with
 *    no completions.
 *
 * Both on a scheduler of their own (started after the fan-out case's stopped) with
 * KILN_WEBHOOK_MAX_PENDING = KILN_BENCH_NOISY_MAX_PENDING (2,000: at 20 events a second an
 * endpoint of A reaches it in 100 s, so A's backlog visibly stops growing within the run when the
 * cap holds) and Kiln's default connect timeout. Measured: B's delay from the status change to its
 * receiver's 200, with the deliveries that never came counted at least as long as they were waited
 * for; every 10 s A's pending deliveries, the sum of its deliveries' attempts and how many were
 * dropped (state 'dropped', which a dispatcher without a backlog cap never sets); the scheduler's
 * RSS every second, during and after. Targets (MB = 10^6 bytes): B's p99 beside A < 1 s; A's
 * attempts per minute over the last third ≤ 10 % of its first minute's (parked endpoints take almost
 * none); A's pending at the end no more than 5 % above its figure two thirds through; the
 * scheduler's RSS < 250 MB throughout.
 */
import { readFileSync } from 'node:fs';
import { Server, Socket, createServer } from 'node:net';
import { Pool } from 'pg';
import { sleep } from '../test/support/processes';
import { setting } from './lib/env';
import { Kiln, newProject } from './lib/kiln';
import { defer, round, startApp } from './lib/procs';
import { BenchContext, Row, fmt } from './lib/report';
import { Summary, summarize } from './lib/stats';
import {
  PhaseResult,
  Receivers,
  account,
  completeTasks,
  delays,
  queueDeferredTasks,
  subscribe,
  waitForHits,
} from './lib/webhook-load';

/** Completions a second: the figures. */
const A_RATE = 20;
const B_RATE = 5;
/** A's subscriptions on each kind of dead endpoint. */
const A_STALLING = 10;
const A_DROPPING = 10;
const SAMPLE_EVERY_MS = 10_000;
const RSS_EVERY_MS = 1000;
const AFTER_MS = 30_000;
const B_P99_TARGET_MS = 1000;
/** A's attempts a minute over the last third, as a share of its first minute's, at most. */
const ATTEMPTS_SHARE_TARGET = 0.1;
/** Growth of A's pending from two thirds through to the end, at most (room for a cap's rhythm). */
const PENDING_GROWTH_TARGET = 0.05;
const RSS_TARGET_MB = 250;

/**
 * A loopback TCP port that accepts connections and then either never answers (`stall`: the
 * sockets stay open until {@link close}) or destroys them at once (`drop`).
 */
class DeadEndpoint {
  connections = 0;
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  private port = 0;

  constructor(readonly mode: 'stall' | 'drop') {
    this.server = createServer((socket) => {
      this.connections++;
      // The other side resets or times out: nothing to report.
      socket.on('error', () => undefined);
      if (mode === 'drop') {
        socket.destroy();
        return;
      }
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      // Read the request, so that the sender is not held up by a full buffer but by the silence.
      socket.resume();
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
    defer(`close the ${this.mode} endpoint`, () => this.close());
    return this;
  }

  url(i: number): string {
    return `http://127.0.0.1:${this.port}/${this.mode}/${i}`;
  }

  /** Open (stalled) connections right now. */
  open(): number {
    return this.sockets.size;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    if (!this.server.listening) return;
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** The resident set of process `pid` in MB, or NaN once it is gone. */
function rssMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return kib ? round((Number(kib[1]) * 1024) / 1e6, 1) : NaN;
  } catch {
    return NaN;
  }
}

interface Sample {
  /** Seconds since B beside A began. */
  t: number;
  /** `end`: taken as the last completion committed. */
  phase: 'during' | 'end' | 'after';
  aPending: number;
  aAttempts: number;
  aDropped: number;
  schedulerRssMb: number;
}

/**
 * The scheduler's RSS every second (its maximum per stage), and from {@link watchA} on, A's
 * deliveries every 10 s.
 */
class Monitor {
  readonly samples: Sample[] = [];
  readonly maxRssMb: Record<'alone' | 'beside' | 'after', number> = {
    alone: 0,
    beside: 0,
    after: 0,
  };
  /** Before B alone: the scheduler up, the tasks queued, nothing delivered yet. */
  readonly rssBeforeMb: number;
  private stage: keyof Monitor['maxRssMb'] = 'alone';
  private watchedSince: number | undefined;
  private nextSampleAt = 0;
  private stopped = false;
  private readonly loop: Promise<void>;
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly db: Pool,
    private readonly pid: number,
    private readonly projectA: string,
  ) {
    this.rssBeforeMb = rssMb(pid);
    this.loop = this.run().catch((error: unknown) => void (this.failure = { error }));
  }

  /** B beside A begins: A's deliveries are sampled from now on (one sample at once). */
  async watchA(): Promise<void> {
    this.stage = 'beside';
    this.watchedSince = Date.now();
    this.nextSampleAt = this.watchedSince + SAMPLE_EVERY_MS;
    await this.sample('during');
  }

  /** The completions stopped: one sample at once, and RSS counts as "after" from now on. */
  async completionsStopped(): Promise<void> {
    await this.sample('end');
    this.stage = 'after';
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    if (this.failure) throw this.failure.error;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const rss = rssMb(this.pid);
      if (rss > this.maxRssMb[this.stage]) this.maxRssMb[this.stage] = rss;
      if (this.watchedSince !== undefined && Date.now() >= this.nextSampleAt) {
        this.nextSampleAt += SAMPLE_EVERY_MS;
        await this.sample(this.stage === 'after' ? 'after' : 'during');
      }
      await sleep(RSS_EVERY_MS);
    }
  }

  private async sample(phase: Sample['phase']): Promise<void> {
    const at = Date.now();
    // The state 'dropped' exists only where the backlog is capped; elsewhere the count is 0.
    const { rows } = await this.db.query<{ pending: string; attempts: string; dropped: string }>(
      `SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
              coalesce(sum(attempt), 0) AS attempts,
              count(*) FILTER (WHERE state = 'dropped') AS dropped
         FROM webhook_deliveries WHERE project_id = $1`,
      [this.projectA],
    );
    const rss = rssMb(this.pid);
    if (rss > this.maxRssMb[this.stage]) this.maxRssMb[this.stage] = rss;
    const sample: Sample = {
      t: round((at - (this.watchedSince ?? at)) / 1000, 1),
      phase,
      aPending: Number(rows[0].pending),
      aAttempts: Number(rows[0].attempts),
      aDropped: Number(rows[0].dropped),
      schedulerRssMb: rss,
    };
    this.samples.push(sample);
    console.log(
      `[webhooks] noisy t=${sample.t} s: A pending ${fmt(sample.aPending)}, attempts ${fmt(sample.aAttempts)}, dropped ${fmt(sample.aDropped)}; scheduler RSS ${fmt(rss, 1)} MB`,
    );
  }
}

interface BPhase extends PhaseResult {
  /**
   * Over all of the phase's events, one never delivered counted as the time from its change to
   * the end of the wait: a lower bound, so that missing deliveries cannot make the p99 look good.
   */
  delayWithMissingMs: Summary;
}

/** B's deliveries of `ids` (changed at `committedAt`), as they stood at `until` (epoch ms). */
function accountB(
  label: string,
  receivers: Receivers,
  ids: string[],
  committedAt: number[],
  started: number,
  until: number,
): BPhase {
  const mine = new Set(ids);
  const hits = receivers.hits.filter((hit) => mine.has(hit.taskId));
  const result = account(label, hits, ids.length, started, 1);
  const delivered = new Set(hits.map((hit) => hit.taskId));
  const waited = ids.flatMap((id, i) => (delivered.has(id) ? [] : [until - committedAt[i]]));
  const withMissing = summarize([...hits.map((hit) => hit.delayMs), ...waited], 1);
  console.log(
    `[webhooks] ${label}: ${result.distinct}/${result.expected} delivered, ${result.duplicates} duplicates, p99 ${withMissing.p99} ms`,
  );
  return { ...result, delayWithMissingMs: withMissing };
}

/** The sample taken closest to `t` seconds. */
function nearest(samples: Sample[], t: number): Sample {
  return samples.reduce((best, s) => (Math.abs(s.t - t) < Math.abs(best.t - t) ? s : best));
}

export interface NoisyResult {
  params: Record<string, unknown>;
  rows: Row[];
  details: Record<string, unknown>;
}

/**
 * Runs the noisy-neighbour case against `kiln`'s API with a scheduler of its own (`concurrency`
 * deliveries at a time, as the fan-out case's); undefined when KILN_BENCH_NOISY_SECONDS is 0.
 */
export async function noisyNeighbour(
  ctx: BenchContext,
  kiln: Kiln,
  db: Pool,
  concurrency: number,
): Promise<NoisyResult | undefined> {
  const params = {
    baselineSeconds: setting('KILN_BENCH_NOISY_BASELINE_SECONDS', 60),
    seconds: setting('KILN_BENCH_NOISY_SECONDS', 600),
    maxPending: setting('KILN_BENCH_NOISY_MAX_PENDING', 2000),
    aCompletionsPerSecond: A_RATE,
    bCompletionsPerSecond: B_RATE,
    aEndpoints: `${A_STALLING} accept and stall, ${A_DROPPING} accept and drop`,
    bEndpoints: '1 answers 200 at once',
    schedulerConcurrency: concurrency,
    connectTimeoutMs: "Kiln's default (5000)",
    afterSeconds: AFTER_MS / 1000,
  };
  if (params.seconds === 0) {
    console.log('[webhooks] noisy neighbour: skipped (KILN_BENCH_NOISY_SECONDS=0)');
    return undefined;
  }
  const receiverB = new Receivers(1);
  const [urlB] = await receiverB.start();
  const scheduler = startApp(
    'scheduler',
    {
      ...kiln.env,
      KILN_WEBHOOK_CONCURRENCY: String(concurrency),
      KILN_WEBHOOK_MAX_PENDING: String(params.maxPending),
    },
    'webhooks-noisy-scheduler',
    ctx.profile,
  );
  defer('stop the noisy-neighbour scheduler', () => scheduler.stop());
  await scheduler.waitFor(/delivering webhooks/, 60_000);
  // Started after the scheduler, so that on a failure they close first (cleanups run last-in
  // first-out) and the scheduler's shutdown does not wait out its stalled requests.
  const stalling = await new DeadEndpoint('stall').start();
  const dropping = await new DeadEndpoint('drop').start();

  const a = await newProject(kiln, 'bench-webhooks-noisy-a');
  const b = await newProject(kiln, 'bench-webhooks-noisy-b');
  // Every task queued before anything is measured, so that both phases see the same tables.
  console.log(
    `[webhooks] noisy neighbour: queueing ${fmt(B_RATE * (params.baselineSeconds + params.seconds))} tasks for B, ${fmt(A_RATE * params.seconds)} for A`,
  );
  const idsAlone = await queueDeferredTasks(b, B_RATE * params.baselineSeconds);
  const idsBeside = await queueDeferredTasks(b, B_RATE * params.seconds);
  const idsA = await queueDeferredTasks(a, A_RATE * params.seconds);
  await subscribe(b, [urlB]);
  const monitor = new Monitor(db, scheduler.child.pid!, a.id);
  defer('stop the noisy-neighbour monitor', () => monitor.stop().catch(() => undefined));

  // ---------------------------------------------------------------- B alone ----
  console.log(`[webhooks] noisy neighbour: B alone, ${B_RATE}/s for ${params.baselineSeconds} s`);
  const aloneStarted = Date.now();
  const aloneCommitted = await completeTasks(ctx, db, idsAlone, B_RATE);
  await waitForHits(receiverB, 0, idsAlone.length, 60_000);
  const alone = accountB(
    'noisy: B alone',
    receiverB,
    idsAlone,
    aloneCommitted,
    aloneStarted,
    Date.now(),
  );

  // ------------------------------------------------------------ B beside A ----
  await subscribe(a, [
    ...Array.from({ length: A_STALLING }, (_, i) => stalling.url(i)),
    ...Array.from({ length: A_DROPPING }, (_, i) => dropping.url(i)),
  ]);
  console.log(
    `[webhooks] noisy neighbour: B ${B_RATE}/s beside A ${A_RATE}/s to ${A_STALLING + A_DROPPING} dead endpoints, ${params.seconds} s`,
  );
  await monitor.watchA();
  const besideStarted = Date.now();
  const [, besideCommitted] = await Promise.all([
    completeTasks(ctx, db, idsA, A_RATE),
    completeTasks(ctx, db, idsBeside, B_RATE),
  ]);
  await monitor.completionsStopped();
  // B's late deliveries (and duplicates) may still come meanwhile; what has not by then is missing.
  await sleep(AFTER_MS);
  await monitor.stop();
  const beside = accountB(
    'noisy: B beside A',
    receiverB,
    idsBeside,
    besideCommitted,
    besideStarted,
    Date.now(),
  );
  const { rows: aByState } = await db.query<{
    state: string;
    deliveries: string;
    attempts: string;
  }>(
    `SELECT state, count(*) AS deliveries, sum(attempt) AS attempts
       FROM webhook_deliveries WHERE project_id = $1 GROUP BY state ORDER BY state`,
    [a.id],
  );
  const connections = { stalling: stalling.connections, dropping: dropping.connections };
  const stalledOpenAtEnd = stalling.open();
  // Their in-flight requests fail at once, so that the scheduler's shutdown does not wait for them.
  await stalling.close();
  await dropping.close();
  await scheduler.stop();

  // ---------------------------------------------------------------- figures ----
  const samples = monitor.samples;
  const during = samples.filter((s) => s.phase !== 'after');
  const start = during[0];
  const end = samples.find((s) => s.phase === 'end')!;
  const firstMinute = nearest(during, Math.min(60, end.t));
  const twoThirds = nearest(during, (end.t * 2) / 3);
  const perMinute = (from: Sample, to: Sample) =>
    ((to.aAttempts - from.aAttempts) / (to.t - from.t)) * 60;
  const firstRate = perMinute(start, firstMinute);
  const lastRate = perMinute(twoThirds, end);
  const pendingGrowth = (end.aPending - twoThirds.aPending) / Math.max(1, twoThirds.aPending);
  const rssDuring = Math.max(monitor.maxRssMb.alone, monitor.maxRssMb.beside);
  const rssAfter = monitor.maxRssMb.after;
  const b99 = beside.delayWithMissingMs.p99;
  const lowerBound = beside.missing > 0 ? '≥ ' : '';
  const cap = (A_STALLING + A_DROPPING) * params.maxPending;

  const rows: Row[] = [
    {
      metric: `noisy: B alone, ${B_RATE} completions/s (${fmt(alone.events)}): change → 200, p50 / p99 / max`,
      value: delays(alone.delayWithMissingMs),
    },
    {
      metric: `noisy: B beside A (${A_RATE}/s to ${A_STALLING + A_DROPPING} dead endpoints, ${fmt(beside.events)}): p50 / p99 / max`,
      value: `${lowerBound}${delays(beside.delayWithMissingMs)}`,
    },
    {
      metric: 'noisy: B p99 beside A vs alone',
      value: `${lowerBound}${fmt(b99, 1)} vs ${fmt(alone.delayWithMissingMs.p99, 1)} ms (${lowerBound}${fmt(b99 / alone.delayWithMissingMs.p99, 1)}×)`,
    },
    {
      metric: 'noisy: B p99 change → 200 beside A',
      value: `${lowerBound}${fmt(b99, 1)} ms`,
      target: `< ${fmt(B_P99_TARGET_MS)} ms`,
      met: b99 < B_P99_TARGET_MS,
    },
    {
      metric: `noisy: B beside A, every delivery made exactly once (${AFTER_MS / 1000} s of wait)`,
      value: `${fmt(beside.distinct)} of ${fmt(beside.expected)}, ${beside.duplicates} duplicates`,
      target: 'all, once',
      met: beside.missing === 0 && beside.duplicates === 0,
    },
    {
      metric: `noisy: A's attempts per minute, last third (${fmt(twoThirds.t)}–${fmt(end.t)} s) vs first minute`,
      value: `${fmt(lastRate)} vs ${fmt(firstRate)} (${fmt((100 * lastRate) / firstRate)} %)`,
      target: `≤ ${fmt(100 * ATTEMPTS_SHARE_TARGET)} %`,
      met: lastRate <= ATTEMPTS_SHARE_TARGET * firstRate,
    },
    {
      metric: `noisy: A's pending deliveries at ${fmt(twoThirds.t)} s → end (cap ${fmt(A_STALLING + A_DROPPING)} × ${fmt(params.maxPending)} = ${fmt(cap)}); dropped`,
      value: `${fmt(twoThirds.aPending)} → ${fmt(end.aPending)} (${pendingGrowth >= 0 ? '+' : ''}${fmt(100 * pendingGrowth, 1)} %); ${fmt(end.aDropped)}`,
      target: `≤ +${fmt(100 * PENDING_GROWTH_TARGET)} %`,
      met: pendingGrowth <= PENDING_GROWTH_TARGET,
    },
    {
      metric: `noisy: scheduler max RSS during / ${AFTER_MS / 1000} s after (${fmt(monitor.rssBeforeMb, 1)} MB before B alone)`,
      value: `${fmt(rssDuring, 1)} / ${fmt(rssAfter, 1)} MB`,
      target: `< ${fmt(RSS_TARGET_MB)} MB`,
      met: rssDuring < RSS_TARGET_MB && rssAfter < RSS_TARGET_MB,
    },
  ];
  return {
    params,
    rows,
    details: {
      alone,
      beside,
      aAttemptsPerMinute: { firstMinute: round(firstRate), lastThird: round(lastRate) },
      schedulerRssMb: { before: monitor.rssBeforeMb, ...monitor.maxRssMb },
      aDeliveriesByState: aByState.map((row) => ({
        state: row.state,
        deliveries: Number(row.deliveries),
        attempts: Number(row.attempts),
      })),
      deadEndpointConnections: { ...connections, stalledOpenAtEnd },
      samples,
    },
  };
}
