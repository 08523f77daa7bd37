import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** What every API token issued since token roles begins with: secret scanners can match it. */
export const TOKEN_PREFIX = 'kiln_';

/**
 * A new bearer secret (API tokens, trigger secrets): `prefix`, then 24 random bytes, base64url,
 * drawn again if they start with `-` (1 in 64): a secret is given as a command-line argument
 * (`kiln login --token …`), where a leading dash reads as a flag, and `prefix` may be empty.
 */
export function newSecret(prefix = ''): string {
  for (;;) {
    const secret = randomBytes(24).toString('base64url');
    if (!secret.startsWith('-')) return prefix + secret;
  }
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
