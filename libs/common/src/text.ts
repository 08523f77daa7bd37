/**
 * Postgres `text` rejects NUL bytes, so task output and payloads pass through here before they are
 * stored. NUL becomes U+2400 (␀), visible and harmless; invalid UTF-8 has already become U+FFFD
 * in the decoder that produced the string.
 */
export function stripNul(value: string): string {
  return value.includes('\u0000') ? value.replaceAll('\u0000', '\u2400') : value;
}

/**
 * Reads a comma-separated setting: each non-empty item through `parse`; the items it could not
 * read (null) come back as `bad`, for a start-up message naming them.
 */
export function parseCommaList<T>(
  text: string,
  parse: (item: string) => T | null,
): { entries: T[]; bad: string[] } {
  const entries: T[] = [];
  const bad: string[] = [];
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const entry = parse(item);
    if (entry === null) bad.push(item);
    else entries.push(entry);
  }
  return { entries, bad };
}

/**
 * The longest start of `text` whose UTF-8 encoding fits in `maxBytes`, cut between characters
 * (never inside one, nor between the halves of a surrogate pair).
 */
export function utf8Head(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let end = Math.max(0, maxBytes);
  // A byte 10xxxxxx continues a character: back up to where one starts.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}
