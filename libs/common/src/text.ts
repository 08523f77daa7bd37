/**
 * Postgres `text` rejects NUL bytes, so task output and payloads pass through here before they are
 * stored. NUL becomes U+2400 (␀), visible and harmless; invalid UTF-8 has already become U+FFFD
 * in the decoder that produced the string.
 */
export function stripNul(value: string): string {
  return value.includes('\u0000') ? value.replaceAll('\u0000', '\u2400') : value;
}
