import type { Request } from 'express';
import { ErrorCode, KilnException, hashSecret } from '@kiln/common';
import type { KilnConfig } from '@kiln/config';
import type { TokenAccess, TokensService } from '@kiln/projects';
import { TokenStrategy } from './token.strategy';
import type { UiSession, UiSessions } from './ui-sessions';

const SESSION_ID = 'a'.repeat(43);
const ACCESS: TokenAccess = {
  tokenId: 'tok1',
  projectId: 'p'.repeat(24),
  role: 'manage',
  expiresAt: null,
};
const PROJECT_SESSION: UiSession = {
  admin: false,
  tokenId: 'tok1',
  projectId: 'p'.repeat(24),
  role: 'manage',
  csrf: 'c'.repeat(43),
  expiresAt: '2030-01-01T00:00:00.000Z',
};

function request(method: string, headers: Record<string, string> = {}): Request {
  return { method, headers, query: {}, body: undefined } as unknown as Request;
}

/** How `validate` ended: the principal, or the exception's code and message. */
async function outcome(promise: Promise<unknown>): Promise<unknown> {
  try {
    return await promise;
  } catch (error) {
    if (!(error instanceof KilnException)) throw error;
    return { code: error.code, msg: error.message };
  }
}

describe('TokenStrategy: tokens and dashboard sessions', () => {
  let tokens: { access: jest.Mock; accessById: jest.Mock };
  let sessions: { get: jest.Mock; delete: jest.Mock };
  let config: { adminToken: string | undefined };
  let strategy: TokenStrategy;

  beforeEach(() => {
    tokens = { access: jest.fn(), accessById: jest.fn() };
    sessions = { get: jest.fn(), delete: jest.fn() };
    config = { adminToken: 'admin-secret' };
    strategy = new TokenStrategy(
      tokens as unknown as TokensService,
      sessions as unknown as UiSessions,
      config as unknown as KilnConfig,
    );
  });

  const cookie = { cookie: `other=1; kiln_session=${SESSION_ID}` };

  it('uses a token when there is one, and ignores the cookie then', async () => {
    tokens.access.mockResolvedValue({ ...ACCESS, projectId: 'q'.repeat(24) });
    const principal = await strategy.validate(
      request('POST', { ...cookie, authorization: 'OAuth kiln_x' }),
    );
    expect(principal).toMatchObject({ admin: false, projectId: 'q'.repeat(24) });
    expect(sessions.get).not.toHaveBeenCalled();
  });

  it('answers 401 with neither a token nor a cookie, and for a session that has ended', async () => {
    expect(await outcome(strategy.validate(request('GET')))).toMatchObject({
      code: ErrorCode.Unauthorized,
    });
    sessions.get.mockResolvedValue(null);
    expect(await outcome(strategy.validate(request('GET', cookie)))).toEqual({
      code: ErrorCode.Unauthorized,
      msg: 'The dashboard session has ended (it expired, or was signed out): sign in again',
    });
  });

  it("acts as the session's token, looked up again by its id", async () => {
    sessions.get.mockResolvedValue(PROJECT_SESSION);
    tokens.accessById.mockResolvedValue(ACCESS);
    expect(await strategy.validate(request('GET', cookie))).toEqual({
      admin: false,
      projectId: ACCESS.projectId,
      tokenId: 'tok1',
      role: 'manage',
      expiresAt: null,
    });
    expect(sessions.get).toHaveBeenCalledWith(SESSION_ID);
    expect(tokens.accessById).toHaveBeenCalledWith('tok1');
    expect(tokens.access).not.toHaveBeenCalled();
  });

  it('refuses a cookie request other than GET/HEAD without the CSRF secret (403)', async () => {
    sessions.get.mockResolvedValue(PROJECT_SESSION);
    tokens.accessById.mockResolvedValue(ACCESS);
    for (const headers of [cookie, { ...cookie, 'x-kiln-csrf': 'c'.repeat(42) + 'd' }]) {
      expect(await outcome(strategy.validate(request('POST', headers)))).toMatchObject({
        code: ErrorCode.Forbidden,
        msg: expect.stringContaining('X-Kiln-CSRF'),
      });
    }
    expect(await strategy.validate(request('HEAD', cookie))).toMatchObject({ admin: false });
    expect(
      await strategy.validate(request('DELETE', { ...cookie, 'x-kiln-csrf': 'c'.repeat(43) })),
    ).toMatchObject({ admin: false });
  });

  it('ends the session when its token was revoked or has expired', async () => {
    sessions.get.mockResolvedValue(PROJECT_SESSION);
    tokens.accessById.mockResolvedValueOnce('unknown').mockResolvedValueOnce('expired');
    expect(await outcome(strategy.validate(request('GET', cookie)))).toEqual({
      code: ErrorCode.Unauthorized,
      msg: 'The dashboard session has ended: its token was revoked; sign in again',
    });
    expect(await outcome(strategy.validate(request('GET', cookie)))).toEqual({
      code: ErrorCode.Unauthorized,
      msg: 'The dashboard session has ended: its token has expired; sign in again',
    });
    expect(sessions.delete).toHaveBeenCalledTimes(2);
    expect(sessions.delete).toHaveBeenCalledWith(SESSION_ID);
  });

  it("keeps the admin's session only while the admin token is the one it was made with", async () => {
    sessions.get.mockResolvedValue({
      admin: true,
      adminTokenHash: hashSecret('admin-secret'),
      csrf: 'c'.repeat(43),
      expiresAt: '2030-01-01T00:00:00.000Z',
    });
    expect(await strategy.validate(request('GET', cookie))).toEqual({ admin: true });
    config.adminToken = 'rotated';
    expect(await outcome(strategy.validate(request('GET', cookie)))).toMatchObject({
      code: ErrorCode.Unauthorized,
      msg: expect.stringContaining('the admin token changed'),
    });
    expect(sessions.delete).toHaveBeenCalledWith(SESSION_ID);
  });
});
