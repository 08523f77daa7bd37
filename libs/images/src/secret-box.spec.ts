import { randomBytes } from 'node:crypto';
import { open, seal } from './secret-box';

describe('secret box', () => {
  const key = randomBytes(32);

  it('opens what it sealed, and the sealed text does not hold the secret', () => {
    const box = seal(key, 'hunter2', 'row-1');
    expect(box).toMatch(/^v1\./);
    expect(box).not.toContain('hunter2');
    expect(open(key, box, 'row-1')).toBe('hunter2');
    expect(seal(key, 'hunter2', 'row-1')).not.toBe(box); // a fresh IV each time
  });

  it('refuses another key, another row, or tampered bytes', () => {
    const box = seal(key, 'hunter2', 'row-1');
    expect(() => open(randomBytes(32), box, 'row-1')).toThrow();
    expect(() => open(key, box, 'row-2')).toThrow();
    const parts = box.split('.');
    const sealed = Buffer.from(parts[3], 'base64url');
    sealed[0] ^= 1;
    parts[3] = sealed.toString('base64url');
    expect(() => open(key, parts.join('.'), 'row-1')).toThrow();
  });
});
