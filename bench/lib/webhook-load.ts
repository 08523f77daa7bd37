/**
 * What the webhooks benchmark's cases share: receivers that time each delivery, tasks queued a day
 * out (so that nothing but the benchmark moves them) and completed with the worker's own kind of
 * write at a steady pace, and the accounting of what arrived.
 */
import { Pool } from 'pg';
import { sleep } from '../../test/support/processes';
import { Receiver } from '../../test/support/receiver';
import { Project } from './kiln';
import { defer, round } from './procs';
import { BenchContext, fmt } from './report';
import { Summary, summarize } from './stats';

export interface Hit {
  endpoint: number;
  messageId: string;
  taskId: string;
  /** Milliseconds from the status change to the 200 being written. */
  delayMs: number;
  /** Epoch ms when the 200 was written. */
  at: number;
}

/** `count` receivers answering 200 at once; each records what it got and when it answered. */
export class Receivers {
  readonly hits: Hit[] = [];
  readonly servers: Receiver[] = [];
  /** Epoch ms of each direct-loop event, by message id (the direct loop has no database time). */
  readonly directSent = new Map<string, number>();

  constructor(readonly count: number) {}

  async start(): Promise<string[]> {
    const urls: string[] = [];
    for (let endpoint = 0; endpoint < this.count; endpoint++) {
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

export interface PhaseResult {
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

/**
 * `events` fanned out to `endpoints` receivers; `started`: epoch ms of the phase's first event;
 * the phase lasts until its last 200.
 */
export function account(
  label: string,
  hits: Hit[],
  events: number,
  started: number,
  endpoints: number,
): PhaseResult {
  const seconds = (Math.max(started, ...hits.map((hit) => hit.at)) - started) / 1000;
  const keys = new Set(hits.map((hit) => `${hit.endpoint}/${hit.messageId}`));
  const expected = events * endpoints;
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

/** "p50 / p99 / max ms", as the tables show a delay. */
export const delays = (s: Summary): string =>
  `${fmt(s.p50, 1)} / ${fmt(s.p99, 1)} / ${fmt(s.max, 1)} ms`;

/**
 * Fires `count` events at `rate` a second (0 = all at once) through `fire`, and waits for it all.
 * The first failure stops the pacing and is thrown once the events already fired have settled
 * (each is caught at once: one left rejected while the loop sleeps would end the process).
 */
export async function paced(
  count: number,
  rate: number,
  fire: (i: number) => Promise<void>,
): Promise<void> {
  const started = performance.now();
  const pending: Promise<void>[] = [];
  const failures: unknown[] = [];
  for (let i = 0; i < count && failures.length === 0; i++) {
    if (rate > 0) {
      const due = started + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
    }
    pending.push(fire(i).catch((error: unknown) => void failures.push(error)));
  }
  await Promise.all(pending);
  if (failures.length > 0) throw failures[0];
}

/** Waits until `expected` hits arrived after the first `from` (or `timeoutMs`), then 2 s more. */
export async function waitForHits(
  receivers: Receivers,
  from: number,
  expected: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (receivers.hits.length - from < expected && Date.now() < deadline) await sleep(20);
  // Late duplicates would show up here.
  await sleep(2000);
}

/** Subscribes `project` to `task.complete` at each of `urls`. */
export async function subscribe(project: Project, urls: string[]): Promise<void> {
  for (const url of urls) {
    await project.api.ok('POST', `/2/projects/${project.id}/webhooks`, {
      url,
      events: ['task.complete'],
    });
  }
}

/**
 * Queues `count` tasks through the API, a day in the future, so that nothing but the benchmark's
 * UPDATEs changes them; returns their ids.
 */
export async function queueDeferredTasks(project: Project, count: number): Promise<string[]> {
  const ids: string[] = [];
  const body = JSON.stringify({
    tasks: Array.from({ length: 100 }, () => ({ code_name: 'bench', payload: '{}', delay: 86400 })),
  });
  while (ids.length < count) {
    const answer = await project.api.ok('POST', `/2/projects/${project.id}/tasks`, undefined, body);
    ids.push(...(answer.body.tasks as { id: string }[]).map((task) => task.id));
  }
  ids.length = count;
  return ids;
}

/**
 * Completes the tasks `ids` (queued by {@link queueDeferredTasks}) at `rate` a second (0 = all at
 * once), each in a transaction of its own as the worker finishes a task, so that the outbox
 * trigger and its NOTIFY run as they do in production. Returns, by index, the epoch ms at which
 * each UPDATE had committed.
 */
export async function completeTasks(
  ctx: BenchContext,
  db: Pool,
  ids: string[],
  rate: number,
): Promise<number[]> {
  const committedAt: number[] = [];
  await paced(ids.length, rate, async (i) => {
    ctx.deadline.check();
    const result = await db.query(
      `UPDATE tasks
          SET status = 'complete', attempt = 1, start_time = now(), end_time = now(),
              duration_ms = 0, updated_at = now(), heartbeat_at = NULL
        WHERE id = $1 AND status = 'queued'`,
      [ids[i]],
    );
    committedAt[i] = Date.now();
    if (result.rowCount !== 1) throw new Error(`task ${ids[i]} was not completed`);
  });
  return committedAt;
}
