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
 */
import http from 'node:http';
import { Pool } from 'pg';
import { setting } from './lib/env';
import { Project, newProject, startKiln } from './lib/kiln';
import { sleep } from '../test/support/processes';
import { defer, round, startApp } from './lib/procs';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';
import { Summary, summarize } from './lib/stats';
import { Receiver } from '../test/support/receiver';

const ENDPOINTS = 3;

interface Hit {
  endpoint: number;
  messageId: string;
  taskId: string;
  /** Milliseconds from the status change to the 200 being written. */
  delayMs: number;
  /** Epoch ms when the 200 was written. */
  at: number;
}

/** Three receivers; each records what it got and when it answered. */
class Receivers {
  readonly hits: Hit[] = [];
  readonly servers: Receiver[] = [];
  /** Epoch ms of each direct-loop event, by message id (the direct loop has no database time). */
  readonly directSent = new Map<string, number>();

  async start(): Promise<string[]> {
    const urls: string[] = [];
    for (let endpoint = 0; endpoint < ENDPOINTS; endpoint++) {
      const server = new Receiver((received, res) => {
        const messageId = String(received.headers['webhook-id']);
        const event = received.json;
        res.end('ok', () => {
          const changedAt = this.directSent.get(messageId) ?? Date.parse(event.timestamp);
          const at = Date.now();
          this.hits.push({
            endpoint,
            messageId,
            taskId: event.data.task_id,
            delayMs: at - changedAt,
            at,
          });
        });
      });
      await server.start(0, { keepAliveTimeoutMs: 30_000 });
      this.servers.push(server);
      urls.push(server.url(`/hook/${endpoint}`));
    }
    defer('close the receivers', () => this.close());
    return urls;
  }

  async close(): Promise<void> {
    for (const server of this.servers) await server.close();
    this.servers.length = 0;
  }
}

interface PhaseResult {
  label: string;
  events: number;
  expected: number;
  received: number;
  distinct: number;
  duplicates: number;
  missing: number;
  secondsToLast: number;
  delayMs: Summary;
}

/** `started`: epoch ms of the phase's first event; the phase lasts until its last 200. */
function account(label: string, hits: Hit[], events: number, started: number): PhaseResult {
  const seconds = (Math.max(started, ...hits.map((hit) => hit.at)) - started) / 1000;
  const keys = new Set(hits.map((hit) => `${hit.endpoint}/${hit.messageId}`));
  const expected = events * ENDPOINTS;
  return {
    label,
    events,
    expected,
    received: hits.length,
    distinct: keys.size,
    duplicates: hits.length - keys.size,
    missing: expected - keys.size,
    secondsToLast: round(seconds, 2),
    delayMs: summarize(
      hits.map((hit) => hit.delayMs),
      1,
    ),
  };
}

export async function webhooks(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    completions: setting('KILN_BENCH_WEBHOOKS_COMPLETIONS', 1000),
    ratePerSecond: setting('KILN_BENCH_WEBHOOKS_RATE', 200),
    concurrency: setting('KILN_BENCH_WEBHOOKS_CONCURRENCY', 64),
    endpoints: ENDPOINTS,
  };
  const receivers = new Receivers();
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
  for (const url of urls) {
    await project.api.ok('POST', `/2/projects/${project.id}/webhooks`, {
      url,
      events: ['task.complete'],
    });
  }
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
  const exactlyOnce = (phase: PhaseResult) => phase.duplicates === 0 && phase.missing === 0;
  const ms = (s: Summary) => `${fmt(s.p50, 1)} / ${fmt(s.p99, 1)} / ${fmt(s.max, 1)} ms`;
  const rows: Row[] = [
    {
      metric: `direct POST loop, ${fmt(params.ratePerSecond)}/s: delay p50 / p99 / max`,
      value: ms(direct.delayMs),
    },
    {
      metric: `Kiln, ${fmt(params.ratePerSecond)} completions/s: change → 200, p50 / p99 / max`,
      value: ms(paced.delayMs),
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
      value: ms(directBurst.delayMs),
    },
    {
      metric: `Kiln, burst of ${fmt(params.completions)}: change → 200, p50 / p99 / max`,
      value: ms(burst.delayMs),
    },
    {
      metric: 'Kiln, burst: all delivered after / exactly once',
      value: `${fmt(burst.secondsToLast, 2)} s / ${exactlyOnce(burst) ? 'yes' : `NO (${burst.missing} missing, ${burst.duplicates} duplicates)`}`,
    },
    {
      metric: 'burst throughput: Kiln vs direct',
      value: `${fmt(burst.expected / burst.secondsToLast)} vs ${fmt(directBurst.expected / directBurst.secondsToLast)} deliveries/s`,
    },
  ];
  return {
    ...resultHeader('webhooks', ctx, startedAt),
    params: {
      ...params,
      completion:
        "UPDATE tasks SET status = 'complete' … one transaction per task (the worker's finish), paced",
    },
    rows,
    details: { direct, paced, directBurst, burst },
  };
}

/** Fires `count` events at `rate` a second (0 = all at once) through `fire`, and waits for it all. */
async function paced(count: number, rate: number, fire: (i: number) => Promise<void>) {
  const started = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    if (rate > 0) {
      const due = started + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
    }
    pending.push(fire(i));
  }
  await Promise.all(pending);
}

async function waitForHits(
  receivers: Receivers,
  from: number,
  expected: number,
  timeoutMs: number,
) {
  const deadline = Date.now() + timeoutMs;
  while (receivers.hits.length - from < expected && Date.now() < deadline) await sleep(20);
  // Late duplicates would show up here.
  await sleep(2000);
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
  // Queued far in the future, so that nothing but this phase's UPDATEs changes them.
  const ids: string[] = [];
  const body = JSON.stringify({
    tasks: Array.from({ length: 100 }, () => ({ code_name: 'bench', payload: '{}', delay: 86400 })),
  });
  while (ids.length < count) {
    const answer = await project.api.ok('POST', `/2/projects/${project.id}/tasks`, undefined, body);
    ids.push(...(answer.body.tasks as { id: string }[]).map((task) => task.id));
  }
  ids.length = count;
  const from = receivers.hits.length;
  const started = Date.now();
  await paced(count, rate, async (i) => {
    ctx.deadline.check();
    const result = await db.query(
      `UPDATE tasks
          SET status = 'complete', attempt = 1, start_time = now(), end_time = now(),
              duration_ms = 0, updated_at = now(), heartbeat_at = NULL
        WHERE id = $1 AND status = 'queued'`,
      [ids[i]],
    );
    if (result.rowCount !== 1) throw new Error(`task ${ids[i]} was not completed`);
  });
  await waitForHits(receivers, from, count * ENDPOINTS, 120_000);
  const result = account(label, receivers.hits.slice(from), count, started);
  console.log(
    `[webhooks] ${label}: ${result.distinct}/${result.expected} delivered, ${result.duplicates} duplicates, p99 ${result.delayMs.p99} ms`,
  );
  return result;
}
