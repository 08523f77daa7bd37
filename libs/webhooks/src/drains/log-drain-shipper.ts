import { Inject, Injectable, Logger } from '@nestjs/common';
import { backoffMs, newId, SecretBox, sealedContext } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { KilnMetrics } from '@kiln/metrics';
import { isFinal } from '@kiln/tasks';
import { signedHeaders } from '../signing';
import { WebhookSender } from '../webhook-sender';
import {
  DrainLine,
  jsonLines,
  octetCounted,
  splitLines,
  streamName,
  syslogMessage,
} from './drain-lines';
import { drainTarget } from './log-drain-spec';
import { CursorMove, DueDrain, LogDrainStore } from './log-drain-store';
import { SyslogSender } from './syslog-sender';

/** Tasks looked at per drain and round. */
const TASKS_PER_ROUND = 200;
/** Chunks (each at most 64 KiB) read per task and round. */
const CHUNKS_PER_TASK = 16;
/** A batch stops growing past this many bytes of output. */
const BATCH_BYTES = 1024 * 1024;
/** Rounds one drain gets per pass while it has more to send. */
const ROUNDS_PER_PASS = 8;
/** Drains shipped to at once. */
const DRAINS_AT_ONCE = 8;
/** A drain's `swept_until` is moved up at most this often (LogDrainStore.sweep). */
const SWEEP_EVERY_MS = 10_000;
/** How far behind the clock `swept_until` stays: longer than any task's final transaction. */
const SWEEP_LAG_SECONDS = 60;

/** What one round of one drain came to. */
export interface RoundResult {
  delivered: number;
  dropped: number;
  failed: boolean;
  /** Output was left for another round (the batch was full). */
  more: boolean;
}

/**
 * Ships task output to log drains (docs/operations.md, "Log drains"). The stored log chunks are
 * the durable buffer and each drain keeps a cursor per task: a round reads the chunks past the
 * cursors, sends them as one batch and moves the cursors only once the receiver took it
 * (at-least-once). Chunks older than the buffer (`KILN_LOG_DRAIN_BUFFER_SECONDS`) are skipped
 * and counted instead of sent. Nothing on the task's path waits for any of it: the worker only
 * stores chunks, as it does without drains.
 */
@Injectable()
export class LogDrainShipper {
  private readonly logger = new Logger(LogDrainShipper.name);
  private readonly box: SecretBox;
  /** When each drain was last swept, by this process (the leader). */
  private readonly sweptAt = new Map<string, number>();

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly store: LogDrainStore,
    private readonly https: WebhookSender,
    private readonly syslog: SyslogSender,
    private readonly metrics: KilnMetrics,
  ) {
    this.box = SecretBox.from(config);
  }

  /** One pass over every drain not backing off. */
  async shipAll(now = new Date()): Promise<void> {
    const drains = await this.store.due(now);
    const live = new Set(drains.map((drain) => drain.id));
    for (const id of this.sweptAt.keys()) if (!live.has(id)) this.sweptAt.delete(id);
    let next = 0;
    const lane = async () => {
      while (next < drains.length) {
        const drain = drains[next++];
        try {
          for (let round = 0; round < ROUNDS_PER_PASS; round++) {
            if (!(await this.ship(drain)).more) break;
          }
          if (now.getTime() - (this.sweptAt.get(drain.id) ?? 0) >= SWEEP_EVERY_MS) {
            await this.store.sweep(drain, this.endedAfter(now), SWEEP_LAG_SECONDS);
            this.sweptAt.set(drain.id, now.getTime());
          }
        } catch (error) {
          this.logger.warn(`log drain ${drain.id}: ${(error as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DRAINS_AT_ONCE, drains.length) }, lane));
  }

  /** One round of one drain: drop what is past the buffer, send the rest, record both. */
  async ship(drain: DueDrain, now = new Date()): Promise<RoundResult> {
    const bufferMs = this.config.logDrains.bufferSeconds * 1000;
    const cutoff = now.getTime() - bufferMs;
    const tasks = await this.store.tasks(drain, this.endedAfter(now), TASKS_PER_ROUND);
    const byId = new Map(tasks.map((task) => [task.id, task]));
    const chunks = await this.store.chunks(
      tasks.filter((task) => task.lastSeq > task.cursor),
      CHUNKS_PER_TASK,
      BATCH_BYTES,
    );
    const target = drainTarget(drain.url);
    const kind = target.kind === 'https' ? 'https' : 'syslog';

    // Per task: `kept` moves whatever happens (dropped chunks), `sent` only once accepted.
    const kept = new Map<string, number>();
    const sent = new Map<string, number>();
    const lines: DrainLine[] = [];
    let dropped = 0;
    let bytes = 0;
    let more = false;
    for (const chunk of chunks) {
      const task = byId.get(chunk.taskId)!;
      const chunkLines = splitLines(chunk.data);
      if (chunk.at.getTime() < cutoff && !sent.has(chunk.taskId)) {
        dropped += chunkLines.length;
        kept.set(chunk.taskId, chunk.seq);
        continue;
      }
      if (bytes > 0 && bytes + chunk.data.length > BATCH_BYTES) {
        more = true;
        break;
      }
      bytes += chunk.data.length;
      sent.set(chunk.taskId, chunk.seq);
      for (const line of chunkLines) {
        lines.push({
          taskId: task.id,
          projectId: drain.projectId,
          code: task.codeName,
          stream: streamName(chunk.stream),
          line,
          time: chunk.at,
        });
      }
    }
    if (!more && chunks.length > 0) {
      more = tasks.some(
        (task) => (sent.get(task.id) ?? kept.get(task.id) ?? task.cursor) < task.lastSeq,
      );
    }

    const error = lines.length > 0 ? await this.send(drain, target, lines) : null;
    const moved = new Map(kept);
    if (error === null) for (const [taskId, seq] of sent) moved.set(taskId, seq);
    const moves: CursorMove[] = [];
    for (const task of tasks) {
      const seq = moved.get(task.id) ?? task.cursor;
      const done = isFinal(task.status) && seq >= task.lastSeq;
      if (seq !== task.cursor || done) moves.push({ taskId: task.id, seq, done });
    }
    const delivered = error === null ? lines.length : 0;
    const failures = drain.failures + 1;
    const idle = moves.length === 0 && dropped === 0 && lines.length === 0;
    // A round that found nothing writes nothing (a drain is read every pass).
    if (idle && error === null && drain.failures === 0) {
      return { delivered, dropped, failed: false, more };
    }
    await this.store.record(
      drain.id,
      moves,
      { delivered, dropped },
      error === null
        ? null
        : {
            error,
            retryAt: new Date(
              now.getTime() +
                backoffMs(failures, 500, this.config.logDrains.retryMaxSeconds * 1000),
            ),
          },
    );
    if (error === null) drain.failures = 0;
    if (delivered > 0) this.metrics.logDrainDelivered.inc({ kind }, delivered);
    if (dropped > 0) this.metrics.logDrainDropped.inc({ kind }, dropped);
    if (error !== null) this.metrics.logDrainFailures.inc({ kind });
    return { delivered, dropped, failed: error !== null, more: more && error === null };
  }

  /** Sends one batch; null when the receiver took it, else why not. */
  /**
   * Tasks that ended before this are out of every drain's reach: their chunks are all older
   * than the buffer (a task's chunks are stored before it ends), dropped if not sent.
   */
  private endedAfter(now: Date): Date {
    return new Date(now.getTime() - 2 * this.config.logDrains.bufferSeconds * 1000);
  }

  private async send(
    drain: DueDrain,
    target: ReturnType<typeof drainTarget>,
    lines: DrainLine[],
  ): Promise<string | null> {
    if (target.kind === 'https') {
      const body = jsonLines(lines);
      const secret = this.box.read(
        drain.secret!,
        sealedContext.logDrainSecret(drain.projectId, drain.id),
      );
      const headers = {
        'content-type': 'application/x-ndjson',
        'user-agent': 'Kiln-LogDrain',
        ...signedHeaders([secret], `msg_${newId()}`, Math.floor(Date.now() / 1000), body),
      };
      const result = await this.https.post(target.url, headers, body);
      if (result.error !== null) return result.error;
      const status = result.statusCode ?? 0;
      return status >= 200 && status < 300 ? null : `receiver answered ${status}`;
    }
    const payload = lines.map((line) => octetCounted(syslogMessage(line))).join('');
    return (await this.syslog.send(target, payload)).error;
  }
}
