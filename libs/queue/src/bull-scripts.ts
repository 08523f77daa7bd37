import type Redis from 'ioredis';

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
