import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import type Redis from 'ioredis';
import { KilnException, hashSecret, withTimeout } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import type { TokenRole } from '@kiln/projects';
import { redisConnection } from '@kiln/redis';

/** The cookie that carries a dashboard session's id. */
export const SESSION_COOKIE = 'kiln_session';
/** The header a cookie-authenticated request other than GET/HEAD must carry: the session's csrf. */
export const CSRF_HEADER = 'x-kiln-csrf';

/** Longest wait for Redis on a session: a request that cannot read its session is a 503. */
const REDIS_WAIT_MS = 2000;

/**
 * What a session holds: who signed in, never the token's secret. A project token's session is
 * re-checked against its token (by `tokenId`) on every request; the admin's against the admin
 * token configured now (by its hash), so rotating KILN_ADMIN_TOKEN ends the admin's sessions.
 */
export type SessionSubject =
  | { admin: true; adminTokenHash: string }
  | { admin: false; tokenId: string; projectId: string; role: TokenRole };

export type UiSession = SessionSubject & {
  /** Sent back in `X-Kiln-CSRF` by every mutating request of the dashboard. */
  csrf: string;
  /** ISO time the session ends (Redis expires it then). */
  expiresAt: string;
};

/**
 * Dashboard sessions, in Redis so that every API replica shares them, each with a TTL of
 * KILN_UI_SESSION_HOURS. The session id (the cookie, 32 random bytes) is stored only as its
 * SHA-256 in the key: a copy of Redis does not hand out live cookies.
 */
@Injectable()
export class UiSessions implements OnApplicationShutdown {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(@Inject(KILN_CONFIG) private readonly config: KilnConfig) {
    this.prefix = `${config.queuePrefix}:ui-session:`;
    this.redis = redisConnection(config, {
      lazyConnect: true,
      enableOfflineQueue: true,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
    });
    this.redis.on('error', () => undefined);
  }

  /** Starts a session for `subject`: answers its id (the cookie's value) and the session. */
  async create(subject: SessionSubject): Promise<{ id: string; session: UiSession }> {
    const id = randomBytes(32).toString('base64url');
    const ttlSeconds = this.config.api.uiSessionHours * 3600;
    const session: UiSession = {
      ...subject,
      csrf: randomBytes(32).toString('base64url'),
      expiresAt: new Date(Date.now() + ttlSeconds * 1000).toISOString(),
    };
    await this.run(() => this.redis.set(this.key(id), JSON.stringify(session), 'EX', ttlSeconds));
    return { id, session };
  }

  /** The live session of a cookie's value, or null (unknown, expired, or not a session id). */
  async get(id: string): Promise<UiSession | null> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return null;
    const stored = await this.run(() => this.redis.get(this.key(id)));
    return stored ? (JSON.parse(stored) as UiSession) : null;
  }

  async delete(id: string): Promise<void> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return;
    await this.run(() => this.redis.del(this.key(id)));
  }

  async onApplicationShutdown(): Promise<void> {
    this.redis.disconnect();
  }

  private key(id: string): string {
    return this.prefix + hashSecret(id);
  }

  private async run<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await withTimeout(call(), REDIS_WAIT_MS, `no answer within ${REDIS_WAIT_MS} ms`);
    } catch {
      throw KilnException.unavailable('Dashboard sessions are unavailable (Redis): retry shortly');
    }
  }
}

/** The value of the session cookie in a request's `Cookie` header, if any. */
export function sessionCookie(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** `Set-Cookie` for a session id (or, with `null`, one that clears the cookie). */
export function sessionSetCookie(id: string | null, secure: boolean, maxAgeSeconds = 0): string {
  const parts = [
    `${SESSION_COOKIE}=${id ?? ''}`,
    'HttpOnly',
    'SameSite=Strict',
    'Path=/',
    `Max-Age=${id === null ? 0 : maxAgeSeconds}`,
  ];
  if (secure) parts.push('Secure');
  return parts.join('; ');
}
