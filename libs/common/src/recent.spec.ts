import { RecentValues } from './recent';

describe('RecentValues', () => {
  afterEach(() => jest.useRealTimers());

  it('remembers a value for its time to live, and forgets it on delete', () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const recent = new RecentValues<number>(1000, 10);
    recent.set('a', 1);
    expect(recent.get('a')).toBe(1);
    jest.setSystemTime(1_000_999);
    expect(recent.get('a')).toBe(1);
    jest.setSystemTime(1_001_000);
    expect(recent.get('a')).toBeUndefined();
    recent.set('b', 2);
    recent.delete('b');
    expect(recent.get('b')).toBeUndefined();
  });

  it('drops everything once it holds max values', () => {
    const recent = new RecentValues<string>(60_000, 2);
    recent.set('a', 'x');
    recent.set('b', 'y');
    recent.set('c', 'z');
    expect([recent.get('a'), recent.get('b'), recent.get('c')]).toEqual([
      undefined,
      undefined,
      'z',
    ]);
  });
});
