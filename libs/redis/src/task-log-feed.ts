import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import type Redis from 'ioredis';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { sideConnection } from './side-connection';

/** Messages per pipeline of {@link TaskLogFeed.endedAll}. */
const END_BATCH = 1000;

/** A stored log chunk as it travels over the feed (the same seq as in Postgres). */
export interface FeedChunk {
  seq: number;
  stream: number;
  data: string;
}

/** What a follower hears: new chunks of one attempt, or that the task's run has ended. */
export type FeedMessage =
  { kind: 'chunks'; attempt: number; chunks: FeedChunk[] } | { kind: 'end'; attempt: number };

/**
 * Live task output over Redis pub/sub, one channel per task. Workers publish each chunk right
 * after storing it, so a chunk a follower hears is already in Postgres: a follower that misses
 * messages (it subscribed late, Redis hiccuped) reads the gap from the store, and nothing is ever
 * lost, only late. One subscriber connection per process serves every follower in it.
 */
@Injectable()
export class TaskLogFeed implements OnApplicationShutdown {
  private readonly logger = new Logger(TaskLogFeed.name);
  private readonly prefix: string;
  private publisher: Redis | undefined;
  private subscriber: Redis | undefined;
  private readonly listeners = new Map<string, Set<(message: FeedMessage) => void>>();
  private readonly subscribing = new Map<string, Promise<unknown>>();

  constructor(@Inject(KILN_CONFIG) private readonly config: KilnConfig) {
    this.prefix = `${config.queuePrefix}:log:`;
  }

  /** Publishes chunks just stored; a failure only delays followers (they poll the store). */
  async publish(taskId: string, attempt: number, chunks: FeedChunk[]): Promise<void> {
    if (chunks.length === 0) return;
    await this.send(taskId, { kind: 'chunks', attempt, chunks });
  }

  /** Tells followers the attempt has ended (its final status is recorded, its log complete). */
  async ended(taskId: string, attempt: number): Promise<void> {
    await this.send(taskId, { kind: 'end', attempt });
  }

  /**
   * `ended` for many tasks at once, in pipelines of {@link END_BATCH}: the API's cancel of tasks
   * that never ran (no worker will say they ended), so that whoever waits for them hears it now.
   */
  async endedAll(ends: { id: string; attempt: number }[]): Promise<void> {
    if (ends.length === 0) return;
    this.publisher ??= this.connect();
    try {
      for (let start = 0; start < ends.length; start += END_BATCH) {
        const pipeline = this.publisher.pipeline();
        for (const { id, attempt } of ends.slice(start, start + END_BATCH)) {
          const message: FeedMessage = { kind: 'end', attempt };
          pipeline.publish(this.prefix + id, JSON.stringify(message));
        }
        await pipeline.exec();
      }
    } catch (error) {
      this.logger.warn(`ends of ${ends.length} tasks not published: ${(error as Error).message}`);
    }
  }

  /**
   * Calls `listener` with every message on the task's channel until the returned function is
   * called. Resolves once Redis confirmed the subscription, so whatever is published afterwards
   * is heard; rejects when Redis is unreachable.
   */
  async subscribe(taskId: string, listener: (message: FeedMessage) => void): Promise<() => void> {
    const channel = this.prefix + taskId;
    const subscriber = (this.subscriber ??= this.connectSubscriber());
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      const pending = subscriber.subscribe(channel).finally(() => this.subscribing.delete(channel));
      this.subscribing.set(channel, pending);
    }
    set.add(listener);
    const unsubscribe = () => {
      const current = this.listeners.get(channel);
      if (!current?.delete(listener) || current.size > 0) return;
      this.listeners.delete(channel);
      subscriber.unsubscribe(channel).catch(() => undefined);
    };
    try {
      await this.subscribing.get(channel);
    } catch (error) {
      unsubscribe();
      throw error;
    }
    return unsubscribe;
  }

  async onApplicationShutdown(): Promise<void> {
    this.publisher?.disconnect();
    this.subscriber?.disconnect();
  }

  private async send(taskId: string, message: FeedMessage): Promise<void> {
    this.publisher ??= this.connect();
    try {
      await this.publisher.publish(this.prefix + taskId, JSON.stringify(message));
    } catch (error) {
      this.logger.warn(`log feed of task ${taskId} not published: ${(error as Error).message}`);
    }
  }

  private connectSubscriber(): Redis {
    const redis = this.connect();
    redis.on('message', (channel: string, raw: string) => {
      const listeners = this.listeners.get(channel);
      if (!listeners) return;
      let message: FeedMessage;
      try {
        message = JSON.parse(raw) as FeedMessage;
      } catch {
        this.logger.warn(`ignored a malformed message on ${channel}`);
        return;
      }
      for (const listener of listeners) listener(message);
    });
    return redis;
  }

  private connect(): Redis {
    return sideConnection(this.config);
  }
}
