import { Transport } from './http';
import { compact } from './paging';
import { ApiToken, CreatedToken, Message, NewToken } from './types';

/**
 * The project's API tokens: `kiln.tokens`. Needs the admin token or a `manage` token of the
 * project. A token's secret is shown once, when it is created.
 */
export class Tokens {
  constructor(
    private readonly http: Transport,
    private readonly base: string,
  ) {}

  /** The project's tokens that are not revoked (expired ones included), oldest first; no secrets. */
  async list(): Promise<ApiToken[]> {
    const { tokens } = await this.http.json<{ tokens: ApiToken[] }>({
      method: 'GET',
      path: `${this.base}/tokens`,
      idempotent: true,
    });
    return tokens;
  }

  /**
   * A new token: `role` `read`, `queue` or `manage` (the default), optionally expiring. Its
   * `token` (the secret, `kiln_…`) is in this answer only.
   * @example const { token } = await kiln.tokens.create({ name: 'ci', role: 'queue', expiresAt: new Date(Date.now() + 86400e3) });
   */
  async create(options: NewToken = {}): Promise<CreatedToken> {
    const expiresAt =
      options.expiresAt instanceof Date ? options.expiresAt.toISOString() : options.expiresAt;
    return this.http.json<CreatedToken>({
      method: 'POST',
      path: `${this.base}/tokens`,
      json: compact({ name: options.name, role: options.role, expires_at: expiresAt }),
      // Each call makes another token.
      idempotent: false,
    });
  }

  /** Revokes a token: it answers 401 from then on, on every API replica within a second. */
  async revoke(id: string): Promise<Message> {
    return this.http.json<Message>({
      method: 'DELETE',
      path: `${this.base}/tokens/${encodeURIComponent(id)}`,
      idempotent: true,
    });
  }
}
