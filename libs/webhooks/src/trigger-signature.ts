import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { HmacEncoding } from './code-trigger.entity';

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Compares in constant time (for equal lengths; a length mismatch is simply false). */
export function sameBytes(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

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
    ? sameBytes(header.trim().toLowerCase(), expected.toLowerCase())
    : sameBytes(header.trim(), expected);
}
