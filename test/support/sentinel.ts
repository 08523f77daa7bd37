import { ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { freePort, sleep } from './processes';

// Jest-free: the benchmarks (bench/, plain node) import this file too.

/** The primary's name as the sentinels know it. */
export const SENTINEL_NAME = 'kiln-ha';

interface Node {
  port: number;
  child: ChildProcess;
}

/**
 * Redis with Sentinel, of a suite's own: a primary and a replica (`redis-server`, AOF on,
 * `noeviction`, as Kiln asks of its Redis) and three sentinels (`redis-sentinel`, quorum 2), all
 * on loopback ports of their own with their data in a temporary folder, stopped by `stop`.
 */
export class OwnSentinelRedis {
  readonly servers: Node[] = [];
  readonly sentinels: Node[] = [];
  private dir = '';

  async start(): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'kiln-sentinel-'));
    const primary = await this.server('a');
    await this.server('b', primary.port);
    await waitFor('the replica in sync', async () => {
      const info = await once(primary.port, (redis) => redis.info('replication'));
      return /slave0:.*state=online/.test(info);
    });
    for (const name of ['s1', 's2', 's3']) await this.sentinel(name, primary.port);
    await waitFor('the sentinels to know each other and the replica', async () => {
      const answers = await Promise.all(
        this.sentinels.map((sentinel) =>
          once(sentinel.port, async (redis) => {
            const [master] = (await redis.call('SENTINEL', 'MASTERS')) as string[][];
            const field = (name: string) => master[master.indexOf(name) + 1];
            return Number(field('num-other-sentinels')) === 2 && Number(field('num-slaves')) === 1;
          }),
        ),
      );
      return answers.every(Boolean);
    });
  }

  /** `REDIS_SENTINELS` for Kiln. */
  get sentinelList(): string {
    return this.sentinels.map((sentinel) => `127.0.0.1:${sentinel.port}`).join(',');
  }

  /** The port of the primary, as the sentinels name it now. */
  async primaryPort(): Promise<number> {
    const [, port] = (await once(this.sentinels[0].port, (redis) =>
      redis.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_NAME),
    )) as string[];
    return Number(port);
  }

  /** `kill -9` of the primary; resolves once the sentinels name the other server primary. */
  async killPrimary(): Promise<{ from: number; to: number }> {
    const from = await this.primaryPort();
    const node = this.servers.find((server) => server.port === from)!;
    const exited = new Promise((resolve) => node.child.once('exit', resolve));
    node.child.kill('SIGKILL');
    await exited;
    let to = from;
    await waitFor(
      'the failover',
      async () => {
        to = await this.primaryPort();
        if (to === from) return false;
        const role = (await once(to, (redis) => redis.call('ROLE'))) as [string];
        return role[0] === 'master';
      },
      60_000,
    );
    return { from, to };
  }

  async stop(): Promise<void> {
    await Promise.all([...this.sentinels, ...this.servers].map(({ child }) => stopChild(child)));
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  private async server(name: string, primaryPort?: number): Promise<Node> {
    const port = await freePort();
    const dir = join(this.dir, name);
    mkdirSync(dir);
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--appendonly',
      'yes',
      '--save',
      '',
      '--maxmemory-policy',
      'noeviction',
      '--daemonize',
      'no',
      '--logfile',
      join(dir, 'redis.log'),
      ...(primaryPort ? ['--replicaof', '127.0.0.1', String(primaryPort)] : []),
    ];
    const node = { port, child: spawn('redis-server', args, { stdio: 'ignore' }) };
    this.servers.push(node);
    await waitFor(`redis ${name}`, () =>
      once(port, async (redis) => (await redis.ping()) === 'PONG'),
    );
    return node;
  }

  private async sentinel(name: string, primaryPort: number): Promise<void> {
    const port = await freePort();
    const dir = join(this.dir, name);
    mkdirSync(dir);
    // Sentinel rewrites its configuration file: it must be a writable file of its own.
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `logfile ${join(dir, 'sentinel.log')}`,
        `sentinel monitor ${SENTINEL_NAME} 127.0.0.1 ${primaryPort} 2`,
        `sentinel down-after-milliseconds ${SENTINEL_NAME} 1000`,
        `sentinel failover-timeout ${SENTINEL_NAME} 10000`,
        `sentinel parallel-syncs ${SENTINEL_NAME} 1`,
        '',
      ].join('\n'),
    );
    const node = { port, child: spawn('redis-sentinel', [conf], { stdio: 'ignore' }) };
    this.sentinels.push(node);
    await waitFor(`sentinel ${name}`, () =>
      once(port, async (redis) => (await redis.ping()) === 'PONG'),
    );
  }
}

/** `work` on a short connection of its own to 127.0.0.1:`port`. */
async function once<T>(port: number, work: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return await work(redis);
  } finally {
    redis.disconnect();
  }
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      if (await check()) return;
    } catch (error) {
      last = (error as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${what} ${last}`);
    await sleep(200);
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
