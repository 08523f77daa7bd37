import type { Queue } from 'bull';
import type Redis from 'ioredis';

/** Bull's queue internals Kiln's own scripts rely on (public in Bull 4, missing from its typings). */
export interface BullQueueInternals {
  client: Redis;
  /** The queue's keys by suffix (`wait`, `paused`, `meta-paused`, …; `''` is the job key prefix). */
  keys: Record<string, string>;
  /** The queue's token, part of the `waiting` channel name. */
  token: string;
}

export function bullInternals(queue: Queue<unknown>): BullQueueInternals {
  return queue as unknown as BullQueueInternals;
}

/**
 * The Lua script `lua` as command `name` of `client`, defined on first use (ioredis then runs it
 * by EVALSHA). Without `numberOfKeys`, the command's first argument is the number of keys.
 */
export function scriptCommand<R>(
  client: Redis,
  name: string,
  lua: string,
  numberOfKeys?: number,
): (...args: (string | number)[]) => Promise<R> {
  const commands = client as unknown as Record<string, unknown>;
  if (!commands[name]) client.defineCommand(name, { lua, numberOfKeys });
  const command = commands[name] as (...args: (string | number)[]) => Promise<R>;
  return (...args) => command.apply(client, args);
}
