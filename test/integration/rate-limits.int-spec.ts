import Redis from 'ioredis';
import { randomBytes } from 'node:crypto';
import { KilnConfig, loadConfig } from '@kiln/config';
import { RateLimits } from '@kiln/redis';
import { waitUntil } from '../support/kiln';
import { sleep } from '../support/processes';
import { testRedisUrl } from '../support/redis';

/**
 * The API's rate limits (libs/redis/src/rate-limits.ts) against the real Redis: two instances
 * stand for two API replicas sharing one Redis, under a key prefix of this file's own.
 */
describe('RateLimits', () => {
  const redisUrl = testRedisUrl();
  const prefix = `kiln-test-ratelimits-${randomBytes(4).toString('hex')}`;
  const redis = new Redis(redisUrl);
  const opened: RateLimits[] = [];

  function replica(env: Record<string, string>): RateLimits {
    const config: KilnConfig = loadConfig({
      DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db',
      REDIS_URL: redisUrl,
      KILN_QUEUE_PREFIX: prefix,
      ...env,
    });
    const limits = new RateLimits(config);
    opened.push(limits);
    return limits;
  }

  afterAll(async () => {
    for (const limits of opened) await limits.onApplicationShutdown();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  const tight = { KILN_RATE_LIMIT_PER_SECOND: '2', KILN_RATE_LIMIT_BURST: '4' };

  /** Until its connection is up a replica lets everything through: wait for it. */
  const ready = (limits: RateLimits) =>
    waitUntil('the connection to Redis', () => limits.connected, { timeoutMs: 5000 });

  it("takes a token's burst, then refuses with the wait until the next request; the bucket is shared", async () => {
    const one = replica(tight);
    const two = replica(tight);
    await Promise.all([ready(one), ready(two)]);
    const token = `token-${randomBytes(4).toString('hex')}`;
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await (i % 2 ? two : one).admit('192.0.2.1', token));
    expect(answers.every((answer) => answer.allowed)).toBe(true);
    const refused = await two.admit('192.0.2.1', token);
    expect(refused).toMatchObject({ allowed: false, reason: 'token' });
    // Two a second: the next request in at most 500 ms.
    expect(refused.allowed === false && refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.allowed === false && refused.retryAfterMs).toBeLessThanOrEqual(500);
    expect((await one.admit('192.0.2.1', token)).allowed).toBe(false);
    // Another token, and the admin token (no bucket), are not touched.
    expect((await one.admit('192.0.2.1', `${token}-other`)).allowed).toBe(true);
    for (let i = 0; i < 10; i++) expect((await one.admit('192.0.2.1', null)).allowed).toBe(true);
    await sleep(600);
    expect((await two.admit('192.0.2.1', token)).allowed).toBe(true);
  });

  it('blocks an address at its Nth failure in the window, everywhere, for the block time', async () => {
    const env = {
      KILN_AUTH_FAILURE_LIMIT: '3',
      KILN_AUTH_FAILURE_WINDOW_SECONDS: '60',
      KILN_AUTH_BLOCK_SECONDS: '1',
    };
    const one = replica(env);
    const two = replica(env);
    await Promise.all([ready(one), ready(two)]);
    const address = `198.51.100.${Math.floor(Math.random() * 200) + 1}`;
    expect(await one.failed(address)).toBe(0);
    expect(await two.failed(address)).toBe(0);
    // The third failure blocks: it is still answered as a failure, the next requests are refused.
    expect(await one.failed(address)).toBe(0);
    expect(one.blockedFor(address)).toBe(0);
    const refused = await two.admit(address, 'some-token');
    expect(refused).toMatchObject({ allowed: false, reason: 'address' });
    expect(refused.allowed === false && refused.retryAfterMs).toBeLessThanOrEqual(1000);
    // Remembered in the process that heard it: no Redis call for the next ones.
    expect(two.blockedFor(address)).toBeGreaterThan(0);
    expect(await one.failed(address)).toBeGreaterThan(0);
    expect((await one.admit('198.51.100.250', 'some-token')).allowed).toBe(true);
    await sleep(1100);
    expect(two.blockedFor(address)).toBe(0);
    expect((await one.admit(address, 'some-token')).allowed).toBe(true);
  });

  it('lets requests through when Redis cannot be reached', async () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db',
      REDIS_URL: 'redis://127.0.0.1:1',
      ...tight,
    });
    const limits = new RateLimits(config);
    opened.push(limits);
    const started = Date.now();
    for (let i = 0; i < 10; i++) {
      expect((await limits.admit('192.0.2.9', 'token')).allowed).toBe(true);
    }
    expect(await limits.failed('192.0.2.9')).toBe(0);
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
