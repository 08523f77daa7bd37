import { hashSecret } from '@kiln/common';
import type { Repository } from 'typeorm';
import type { ProjectsService } from './projects.service';
import type { Token } from './token.entity';
import { parseTokenSpec } from './token-spec';
import { LAST_USE_WRITE_MS, TOKEN_CACHE_MS, TokensService } from './tokens.service';

/** A token table of one row, counting look-ups and last-use writes. */
function fakeStore(row: Partial<Token> | null) {
  const counts = { finds: 0, lastUseWrites: 0 };
  let pendingFind: (() => void) | undefined;
  const repository = {
    findOneBy: async () => {
      counts.finds++;
      if (pendingFind === undefined) return row;
      await new Promise<void>((resolve) => (pendingFind = resolve));
      return row;
    },
    createQueryBuilder: () => {
      const builder = {
        update: () => builder,
        set: () => builder,
        where: () => builder,
        execute: async () => {
          counts.lastUseWrites++;
          return { affected: 1 };
        },
      };
      return builder;
    },
  };
  const service = new TokensService(
    repository as unknown as Repository<Token>,
    {} as ProjectsService,
  );
  return {
    service,
    counts,
    /** The next look-up waits until the returned function is called. */
    holdNextFind: () => {
      pendingFind = () => undefined;
      return () => {
        const release = pendingFind!;
        pendingFind = undefined;
        release();
      };
    },
  };
}

const ROW: Partial<Token> = {
  id: 'a'.repeat(24),
  projectId: 'b'.repeat(24),
  tokenHash: hashSecret('kiln_secret'),
  role: 'queue',
  expiresAt: null,
};

describe('TokensService.access', () => {
  afterEach(() => jest.useRealTimers());

  it('remembers a live token for TOKEN_CACHE_MS (≤ 1 s), then reads it again', async () => {
    jest.useFakeTimers({ now: 1_000_000, doNotFake: ['nextTick', 'setImmediate'] });
    const { service, counts } = fakeStore(ROW);
    expect(TOKEN_CACHE_MS).toBeLessThanOrEqual(1000);
    expect(await service.access('kiln_secret')).toEqual({
      tokenId: ROW.id,
      projectId: ROW.projectId,
      role: 'queue',
      expiresAt: null,
    });
    await service.access('kiln_secret');
    expect(counts.finds).toBe(1);
    jest.setSystemTime(1_000_000 + TOKEN_CACHE_MS);
    await service.access('kiln_secret');
    expect(counts.finds).toBe(2);
  });

  it('checks expiry on every request, cached or not', async () => {
    jest.useFakeTimers({ now: 1_000_000, doNotFake: ['nextTick', 'setImmediate'] });
    const { service, counts } = fakeStore({ ...ROW, expiresAt: new Date(1_000_500) });
    expect(await service.access('kiln_secret')).toMatchObject({ role: 'queue' });
    jest.setSystemTime(1_000_500);
    expect(await service.access('kiln_secret')).toBe('expired');
    expect(counts.finds).toBe(1); // the cached entry said so
  });

  it('forgets everything on a revocation, and does not cache a look-up that a revocation overtook', async () => {
    const { service, counts, holdNextFind } = fakeStore(ROW);
    await service.access('kiln_secret');
    service.forgetTokens();
    await service.access('kiln_secret');
    expect(counts.finds).toBe(2);
    const release = holdNextFind();
    service.forgetTokens();
    const racing = service.access('kiln_secret');
    service.forgetTokens(); // heard while the look-up was in flight
    release();
    await racing;
    await service.access('kiln_secret');
    expect(counts.finds).toBe(4);
  });

  it('answers unknown for a secret with no live token', async () => {
    expect(await fakeStore(null).service.access('nope')).toBe('unknown');
  });

  it('writes last_used_at at most once a LAST_USE_WRITE_MS per token', async () => {
    jest.useFakeTimers({ now: 1_000_000, doNotFake: ['nextTick', 'setImmediate'] });
    const { service, counts } = fakeStore(ROW);
    for (let i = 0; i < 50; i++) await service.access('kiln_secret');
    expect(counts.lastUseWrites).toBe(1);
    jest.setSystemTime(1_000_000 + LAST_USE_WRITE_MS);
    for (let i = 0; i < 50; i++) await service.access('kiln_secret');
    expect(counts.lastUseWrites).toBe(2);
  });
});

describe('parseTokenSpec', () => {
  const now = new Date('2026-11-30T12:00:00Z');

  it('defaults to a manage token that never expires', () => {
    expect(parseTokenSpec({}, now)).toEqual({ name: '', role: 'manage', expiresAt: null });
    expect(
      parseTokenSpec({ name: 'ci', role: 'read', expires_at: '2026-12-01T00:00:00+01:00' }, now),
    ).toEqual({ name: 'ci', role: 'read', expiresAt: new Date('2026-11-30T23:00:00Z') });
  });

  it.each([
    [{ role: 'admin' }, 'role must be one of read, queue, manage, not "admin"'],
    [{ role: 3 }, 'role must be a string'],
    [{ expires_at: 'tomorrow' }, 'expires_at must be an RFC3339 time'],
    [{ expires_at: '2026-02-30T00:00:00Z' }, 'expires_at must be an RFC3339 time'],
    [{ expires_at: '2026-11-30T12:00:00Z' }, 'expires_at must be in the future'],
    [{ name: 'x'.repeat(256) }, 'name is larger than 255 bytes'],
  ])('refuses %j', (body, message) => {
    expect(() => parseTokenSpec(body, now)).toThrow(message);
  });
});

describe('TokensService.accessById (dashboard sessions)', () => {
  afterEach(() => jest.useRealTimers());

  it('answers as access does, by the id, and forgets it on a revocation', async () => {
    const { service, counts } = fakeStore(ROW);
    expect(await service.accessById(ROW.id!)).toEqual({
      tokenId: ROW.id,
      projectId: ROW.projectId,
      role: 'queue',
      expiresAt: null,
    });
    await service.accessById(ROW.id!);
    expect(counts.finds).toBe(1);
    service.forgetTokens();
    await service.accessById(ROW.id!);
    expect(counts.finds).toBe(2);
  });

  it('answers unknown for a revoked token and expired past its expiry', async () => {
    expect(await fakeStore(null).service.accessById(ROW.id!)).toBe('unknown');
    const past = fakeStore({ ...ROW, expiresAt: new Date(Date.now() - 1000) });
    expect(await past.service.accessById(ROW.id!)).toBe('expired');
  });
});
