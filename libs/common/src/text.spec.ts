import fc from 'fast-check';
import { utf8Head } from './text';

describe('utf8Head', () => {
  it('keeps a text that fits whole', () => {
    expect(utf8Head('hello', 5)).toBe('hello');
    expect(utf8Head('', 0)).toBe('');
  });

  it('cuts between characters, never inside one', () => {
    expect(utf8Head('abc', 2)).toBe('ab');
    expect(utf8Head('aé', 2)).toBe('a'); // é is 2 bytes
    expect(utf8Head('a€b', 3)).toBe('a'); // € is 3 bytes
    expect(utf8Head('a€b', 4)).toBe('a€');
    expect(utf8Head('😀x', 3)).toBe(''); // a 4-byte character, not half a surrogate pair
    expect(utf8Head('😀x', 4)).toBe('😀');
  });

  it('is the longest start of the text that fits', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.nat(200), (text, max) => {
        const head = utf8Head(text, max);
        expect(text.startsWith(head)).toBe(true);
        expect(Buffer.byteLength(head)).toBeLessThanOrEqual(max);
        const next = [...text.slice(head.length)][0];
        if (next !== undefined) expect(Buffer.byteLength(head + next)).toBeGreaterThan(max);
      }),
    );
  });
});
