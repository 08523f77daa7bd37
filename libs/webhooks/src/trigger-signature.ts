import { createHmac } from 'node:crypto';
import { sameSecret } from '@kiln/common';
import type { HmacEncoding } from './code-trigger.entity';

/** The header value a sender computes: `prefix` + HMAC-SHA256 of the raw body, hex or base64. */
export function expectedHmac(
  secret: string,
  body: Buffer,
  prefix: string,
  encoding: HmacEncoding,
): string {
  return prefix + createHmac('sha256', secret).update(body).digest(encoding);
}

/** Whether `header` carries the right HMAC of `body` (GitHub's `sha256=<hex>` style and similar). */
export function hmacMatches(
  header: string | undefined,
  secret: string,
  body: Buffer,
  prefix: string,
  encoding: HmacEncoding,
): boolean {
  if (header === undefined) return false;
  const expected = expectedHmac(secret, body, prefix, encoding);
  // Hex digests are case-insensitive; base64 is not.
  return encoding === 'hex'
    ? sameSecret(header.trim().toLowerCase(), expected.toLowerCase())
    : sameSecret(header.trim(), expected);
}
