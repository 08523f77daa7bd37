import { FieldReader, KilnException, requireObject } from '@kiln/common';
import { TOKEN_ROLES, TokenRole, isTokenRole } from './token-roles';

export interface TokenSpec {
  name: string;
  role: TokenRole;
  /** Null: never expires. */
  expiresAt: Date | null;
}

/**
 * `POST …/tokens`: `name` (≤ 255 bytes, default ""), `role` (default `manage`, what every token
 * was before roles, so scripts that post `{}` keep getting the token they expect) and
 * `expires_at` (RFC3339, in the future; absent, `""` or the zero time: never).
 */
export function parseTokenSpec(body: unknown, now = new Date()): TokenSpec {
  const read = new FieldReader(requireObject(body ?? {}, 'body'));
  const name = read.string('name', 255) ?? '';
  const role = read.string('role', 64) ?? 'manage';
  if (!isTokenRole(role)) {
    throw KilnException.badRequest(`role must be one of ${TOKEN_ROLES.join(', ')}, not "${role}"`);
  }
  const expiresAt = read.time('expires_at') ?? null;
  if (expiresAt && expiresAt.getTime() <= now.getTime()) {
    throw KilnException.badRequest(
      `expires_at must be in the future (it is ${expiresAt.toISOString()}, now is ${now.toISOString()})`,
    );
  }
  return { name, role, expiresAt };
}
