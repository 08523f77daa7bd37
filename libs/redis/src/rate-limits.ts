import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import type Redis from 'ioredis';
import { withTimeout } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { redisConnection } from './redis-connection';

/**
 * Checks that an authenticated request may go on: refused while its address is blocked (KEYS[1]),
 * otherwise a token bucket (KEYS[2], `tokens` and `at` in ms of Redis's clock) of ARGV[2]
 * requests refilled at ARGV[1] per second takes one request (no bucket when ARGV[1] is 0).
 * Answers `{allowed 0|1, retry after ms, 1 when the address is blocked}`. Redis's own clock
 * serves every replica alike.
 */
const ADMIT = `
local blocked = redis.call('PTTL', KEYS[1])
if blocked > 0 then return {0, blocked, 1} end
local rate = tonumber(ARGV[1])
if rate <= 0 then return {1, 0, 0} end
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[2], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
if tokens < 1 then return {0, math.ceil((1 - tokens) * 1000 / rate), 0} end
redis.call('HSET', KEYS[2], 'tokens', tostring(tokens - 1), 'at', now)
redis.call('PEXPIRE', KEYS[2], math.ceil(burst * 1000 / rate) + 1000)
return {1, 0, 0}
`;

/**
 * Counts a failed authentication of an address (KEYS[2], a window of ARGV[2] ms from the first
 * failure); at the ARGV[1]th the address is blocked (KEYS[1]) for ARGV[3] ms. Answers the ms the
 * address stays blocked: 0 while it is not, and for the failure that blocks it (that one is
 * still answered 401; the next attempts are refused).
 */
const FAILED = `
local blocked = redis.call('PTTL', KEYS[1])
if blocked > 0 then return blocked end
local failures = redis.call('INCR', KEYS[2])
if failures == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
if failures >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
end
return 0
`;

/** Longest wait for Redis before a request goes on unlimited: limits protect, they never block. */
const REDIS_WAIT_MS = 250;
/** Addresses remembered as blocked in this process (so a blocked one costs no I/O at all). */
const LOCAL_BLOCKS_MAX = 10_000;
/** A Redis failure is logged at most this often. */
const WARN_EVERY_MS = 60_000;

/** Whether a request may go on, and if not, for how long and why. */
export type Admission =
  { allowed: true } | { allowed: false; retryAfterMs: number; reason: 'address' | 'token' };

type Scripts = Redis & {
  kilnAdmit(block: string, bucket: string, rate: number, burst: number): Promise<number[]>;
  kilnFailed(
    block: string,
    failures: string,
    limit: number,
    windowMs: number,
    blockMs: number,
  ): Promise<number>;
};

/**
 * The API's rate limits, in Redis so that every replica shares them: a token bucket per project
 * token (`KILN_RATE_LIMIT_PER_SECOND`, `KILN_RATE_LIMIT_BURST`), and a block on client addresses
 * that keep failing to authenticate (`KILN_AUTH_FAILURE_*`, `KILN_AUTH_BLOCK_SECONDS`). Without
 * Redis, requests go on unlimited (a warning is logged): the limits protect the platform, and an
 * outage of Redis must not turn into an outage of the API. Provided by the API alone (not
 * `RedisModule`), since it opens a connection of its own.
 */
@Injectable()
export class RateLimits implements OnApplicationShutdown {
  private readonly logger = new Logger(RateLimits.name);
  private readonly redis: Scripts;
  private readonly prefix: string;
  /** Address → when its block ends (ms), as last heard from Redis. */
  private readonly blocked = new Map<string, number>();
  private warnedAt = 0;

  constructor(@Inject(KILN_CONFIG) private readonly config: KilnConfig) {
    this.prefix = `${config.queuePrefix}:ratelimit:`;
    const redis = redisConnection(config, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2000,
      retryStrategy: () => 1000,
    });
    redis.on('error', () => undefined);
    redis.defineCommand('kilnAdmit', { numberOfKeys: 2, lua: ADMIT });
    redis.defineCommand('kilnFailed', { numberOfKeys: 2, lua: FAILED });
    redis.connect().catch(() => undefined);
    this.redis = redis as Scripts;
  }

  /** Whether the connection to Redis is up (until it is, requests go on unlimited). */
  get connected(): boolean {
    return this.redis.status === 'ready';
  }

  /** How long `address` stays blocked (ms), as far as this process knows; 0: not blocked. */
  blockedFor(address: string): number {
    const until = this.blocked.get(address);
    if (until === undefined) return 0;
    const left = until - Date.now();
    if (left > 0) return left;
    this.blocked.delete(address);
    return 0;
  }

  /**
   * Admits an authenticated request from `address`: refused while the address is blocked, and
   * when `tokenId` (null for the admin token, which has no bucket) has used up its bucket.
   */
  async admit(address: string, tokenId: string | null): Promise<Admission> {
    const { tokenPerSecond, tokenBurst, authFailures } = this.config.rateLimits;
    const rate = tokenId === null ? 0 : tokenPerSecond;
    if (rate === 0 && authFailures === 0) return { allowed: true };
    const answer = await this.run(() =>
      this.redis.kilnAdmit(
        this.key('block', address),
        this.key('token', tokenId ?? 'admin'),
        rate,
        tokenBurst,
      ),
    );
    if (!answer || answer[0] === 1) return { allowed: true };
    const [, retryAfterMs, isAddress] = answer;
    if (isAddress === 1) this.remember(address, retryAfterMs);
    return { allowed: false, retryAfterMs, reason: isAddress === 1 ? 'address' : 'token' };
  }

  /**
   * Counts a failed authentication from `address`; answers how long the address is blocked
   * (ms; 0 when it is not, which includes the failure that blocks it).
   */
  async failed(address: string): Promise<number> {
    const { authFailures, authFailureWindowSeconds, authBlockSeconds } = this.config.rateLimits;
    if (authFailures === 0) return 0;
    const blockedMs = await this.run(() =>
      this.redis.kilnFailed(
        this.key('block', address),
        this.key('failures', address),
        authFailures,
        authFailureWindowSeconds * 1000,
        authBlockSeconds * 1000,
      ),
    );
    if (blockedMs) this.remember(address, blockedMs);
    return blockedMs ?? 0;
  }

  async onApplicationShutdown(): Promise<void> {
    this.redis.disconnect();
  }

  private remember(address: string, ms: number): void {
    if (this.blocked.size >= LOCAL_BLOCKS_MAX) {
      const oldest = this.blocked.keys().next().value;
      if (oldest !== undefined) this.blocked.delete(oldest);
    }
    this.blocked.set(address, Date.now() + ms);
  }

  private key(kind: string, id: string): string {
    return `${this.prefix}${kind}:${id}`;
  }

  private async run<T>(call: () => Promise<T>): Promise<T | undefined> {
    try {
      return await withTimeout(call(), REDIS_WAIT_MS, `no answer within ${REDIS_WAIT_MS} ms`);
    } catch (error) {
      if (Date.now() - this.warnedAt > WARN_EVERY_MS) {
        this.warnedAt = Date.now();
        this.logger.warn(`rate limits not applied (Redis): ${(error as Error).message}`);
      }
      return undefined;
    }
  }
}
