/**
 * webhooks: 1,000 task completions fan out to 3 endpoints (three subscriptions to
 * `task.complete`, receivers on 127.0.0.1 answering 200 at once). Completions are the worker's
 * own status change (`UPDATE tasks SET status = 'complete' …`, one transaction each, paced at
 * KILN_BENCH_WEBHOOKS_RATE a second), so the outbox trigger, NOTIFY, the scheduler's delivery loop
 * and the signed POSTs are all on the path; no containers run (the dispatch benchmark covers them).
 * Measured: every (endpoint, webhook-id) received exactly once, and the delay from the status
 * change (the event's `timestamp`, the database's `now()` of that transaction) to the moment the
 * receiver answers 200 — target p99 < 1 s. Side by side, the same paced events POSTed directly by
 * a loop in this process to the same receivers (no database, no signing): the floor.
 * A second, informational phase completes all 1,000 at once (a burst).
 *
 * Then, on a scheduler of its own, the noisy-neighbour case (./webhooks-noisy.ts): one project's
 * dead endpoints beside another project's healthy one.
 */
import http from 'node:http';
import { Pool } from 'pg';
import { setting } from './lib/env';
import { Project, newProject, startKiln } from './lib/kiln';
import { defer, startApp } from './lib/procs';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';
import {
  PhaseResult,
  Receivers,
  account,
  completeTasks,
  delays,
  paced,
  queueDeferredTasks,
  subscribe,
  waitForHits,
} from './lib/webhook-load';
import { noisyNeighbour } from './webhooks-noisy';

const ENDPOINTS = 3;

export async function webhooks(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    completions: setting('KILN_BENCH_WEBHOOKS_COMPLETIONS', 1000),
    ratePerSecond: setting('KILN_BENCH_WEBHOOKS_RATE', 200),
    concurrency: setting('KILN_BENCH_WEBHOOKS_CONCURRENCY', 64),
    endpoints: ENDPOINTS,
  };
  const receivers = new Receivers(ENDPOINTS);
  const urls = await receivers.start();
  const kiln = await startKiln(ctx.infra, 'webhooks', {
    profile: ctx.profile,
    env: { WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' },
  });
  const scheduler = startApp(
    'scheduler',
    { ...kiln.env, KILN_WEBHOOK_CONCURRENCY: String(params.concurrency) },
    'webhooks-scheduler',
    ctx.profile,
  );
  defer('stop the scheduler', () => scheduler.stop());
  await scheduler.waitFor(/delivering webhooks/, 60_000);
  const project = await newProject(kiln, 'bench-webhooks');
  await subscribe(project, urls);
  const db = new Pool({ connectionString: ctx.infra.databaseUrl, max: 4 });
  defer('close the Postgres pool', () => db.end());

  // ---------------------------------------------------------------- paced ----
  console.log(
    `[webhooks] direct loop: ${params.completions} events × ${ENDPOINTS} at ${params.ratePerSecond}/s`,
  );
  const direct = await directLoop(receivers, urls, params.completions, params.ratePerSecond);
  console.log(`[webhooks] Kiln: ${params.completions} completions at ${params.ratePerSecond}/s`);
  const paced = await kilnPhase(
    ctx,
    receivers,
    project,
    db,
    params.completions,
    params.ratePerSecond,
    'Kiln, paced',
  );

  // ---------------------------------------------------------------- burst ----
  console.log(`[webhooks] burst: ${params.completions} completions at once, both ways`);
  const directBurst = await directLoop(receivers, urls, params.completions, 0);
  const burst = await kilnPhase(ctx, receivers, project, db, params.completions, 0, 'Kiln, burst');

  await scheduler.stop();

  // ------------------------------------------------------- noisy neighbour ----
  const noisy = await noisyNeighbour(ctx, kiln, db, params.concurrency);

  const exactlyOnce = (phase: PhaseResult) => phase.duplicates === 0 && phase.missing === 0;
  const rows: Row[] = [
    {
      metric: `direct POST loop, ${fmt(params.ratePerSecond)}/s: delay p50 / p99 / max`,
      value: delays(direct.delayMs),
    },
    {
      metric: `Kiln, ${fmt(params.ratePerSecond)} completions/s: change → 200, p50 / p99 / max`,
      value: delays(paced.delayMs),
    },
    {
      metric: `Kiln p99 change → receiver's 200 (${fmt(params.completions)} × ${ENDPOINTS})`,
      value: `${fmt(paced.delayMs.p99, 1)} ms`,
      target: '< 1,000 ms',
      met: paced.delayMs.p99 < 1000,
    },
    {
      metric: 'Kiln, paced: every delivery made exactly once',
      value: `${fmt(paced.distinct)} of ${fmt(paced.expected)}, ${paced.duplicates} duplicates`,
      target: 'all, once',
      met: exactlyOnce(paced),
    },
    {
      metric: 'direct loop, burst: delay p50 / p99 / max',
      value: delays(directBurst.delayMs),
    },
    {
      metric: `Kiln, burst of ${fmt(params.completions)}: change → 200, p50 / p99 / max`,
      value: delays(burst.delayMs),
    },
    {
      metric: 'Kiln, burst: all delivered after / exactly once',
      value: `${fmt(burst.secondsToLast, 2)} s / ${exactlyOnce(burst) ? 'yes' : `NO (${burst.missing} missing, ${burst.duplicates} duplicates)`}`,
    },
    {
      metric: 'burst throughput: Kiln vs direct',
      value: `${fmt(burst.expected / burst.secondsToLast)} vs ${fmt(directBurst.expected / directBurst.secondsToLast)} deliveries/s`,
    },
    ...(noisy?.rows ?? []),
  ];
  return {
    ...resultHeader('webhooks', ctx, startedAt),
    params: {
      ...params,
      completion:
        "UPDATE tasks SET status = 'complete' … one transaction per task (the worker's finish), paced",
      noisyNeighbour: noisy?.params ?? 'skipped (KILN_BENCH_NOISY_SECONDS=0)',
    },
    rows,
    details: { direct, paced, directBurst, burst, noisyNeighbour: noisy?.details },
  };
}

async function directLoop(
  receivers: Receivers,
  urls: string[],
  count: number,
  rate: number,
): Promise<PhaseResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const from = receivers.hits.length;
  const started = Date.now();
  const run = `direct-${started}`;
  const post = (url: string, messageId: string, body: string) =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(
        url,
        {
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(body)),
            'webhook-id': messageId,
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve());
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  await paced(count, rate, async (i) => {
    const messageId = `${run}-${i}`;
    receivers.directSent.set(messageId, Date.now());
    const body = JSON.stringify({
      type: 'task.complete',
      timestamp: new Date().toISOString(),
      data: { task_id: messageId },
    });
    await Promise.all(urls.map((url) => post(url, messageId, body)));
  });
  await waitForHits(receivers, from, count * ENDPOINTS, 60_000);
  agent.destroy();
  return account(
    rate > 0 ? 'direct, paced' : 'direct, burst',
    receivers.hits.slice(from),
    count,
    started,
    ENDPOINTS,
  );
}

async function kilnPhase(
  ctx: BenchContext,
  receivers: Receivers,
  project: Project,
  db: Pool,
  count: number,
  rate: number,
  label: string,
): Promise<PhaseResult> {
  const ids = await queueDeferredTasks(project, count);
  const from = receivers.hits.length;
  const started = Date.now();
  await completeTasks(ctx, db, ids, rate);
  await waitForHits(receivers, from, count * ENDPOINTS, 120_000);
  const result = account(label, receivers.hits.slice(from), count, started, ENDPOINTS);
  console.log(
    `[webhooks] ${label}: ${result.distinct}/${result.expected} delivered, ${result.duplicates} duplicates, p99 ${result.delayMs.p99} ms`,
  );
  return result;
}
