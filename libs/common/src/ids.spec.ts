import { isId, newId } from './ids';

describe('newId', () => {
  it('is 24 lowercase hex characters', () => {
    expect(newId()).toMatch(/^[0-9a-f]{24}$/);
  });

  it('starts with the creation time in seconds, so ids sort by time', () => {
    const early = newId(new Date('2020-01-01T00:00:00Z'));
    const late = newId(new Date('2030-01-01T00:00:00Z'));
    expect(early.slice(0, 8)).toBe((Date.parse('2020-01-01T00:00:00Z') / 1000).toString(16));
    expect(early < late).toBe(true);
  });

  it('never repeats and keeps order within one second', () => {
    const now = new Date();
    const ids = Array.from({ length: 1000 }, () => newId(now));
    expect(new Set(ids).size).toBe(1000);
    // The counter may wrap once per 16 M ids; within a thousand it grows except at a wrap.
    const descents = ids.slice(1).filter((id, i) => id < ids[i]).length;
    expect(descents).toBeLessThanOrEqual(1);
  });
});

describe('isId', () => {
  it.each([
    ['5f2b1c3d4e5f6a7b8c9d0e1f', true],
    ['5F2B1C3D4E5F6A7B8C9D0E1F', false],
    ['5f2b1c3d4e5f6a7b8c9d0e1', false],
    ['not-an-id-at-all-xxxxxxx', false],
    [42, false],
  ])('%p → %p', (value, expected) => {
    expect(isId(value)).toBe(expected);
  });
});
