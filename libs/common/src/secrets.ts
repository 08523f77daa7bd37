import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A new bearer secret (API tokens, trigger secrets): 24 random bytes, base64url. */
export function newSecret(): string {
  return randomBytes(24).toString('base64url');
}

/** What is stored of a secret: its SHA-256, hex. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Compares in constant time (for equal lengths; a length mismatch is simply false). */
export function sameSecret(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
