import { FieldReader, KilnException, textProblem } from './index';

function failure(run: () => unknown): KilnException {
  try {
    run();
  } catch (error) {
    return error as KilnException;
  }
  throw new Error('did not throw');
}

describe('textProblem', () => {
  it.each([
    ['plain', undefined],
    ['', undefined],
    ['emoji 🔥 (a surrogate pair)', undefined],
    ['a\u0000b', 'must not contain NUL characters'],
    ['\ud800', 'must not contain unpaired UTF-16 surrogates'],
    ['x\udc00', 'must not contain unpaired UTF-16 surrogates'],
    ['\udc00\ud800', 'must not contain unpaired UTF-16 surrogates'],
  ])('%j → %s', (value, problem) => {
    expect(textProblem(value)).toBe(problem);
  });
});

describe('FieldReader', () => {
  it('keeps integers to Postgres `integer` unless told otherwise, naming the range', () => {
    const read = new FieldReader({
      big: 2147483648,
      small: -2147483649,
      edge: 2147483647,
      f: 1e21,
    });
    expect(read.int('edge')).toBe(2147483647);
    expect(failure(() => read.int('big')).message).toBe(
      'big must be at most 2147483647 (an integer from -2147483648 to 2147483647)',
    );
    expect(failure(() => read.int('small')).message).toBe(
      'small must be at least -2147483648 (an integer from -2147483648 to 2147483647)',
    );
    expect(
      failure(() => new FieldReader({ f: 1e21 }, 'x.').int('f', { min: 0, max: 9 })).message,
    ).toBe('x.f must be at most 9 (an integer from 0 to 9)');
  });

  it('takes any out-of-range number as unset where clients send one to mean that', () => {
    expect(new FieldReader({ p: 1e21 }).lenientInt('p', 0, 2)).toBeUndefined();
    expect(new FieldReader({ p: 1.6 }).lenientInt('p', 0, 2)).toBe(2);
  });

  it('refuses text Postgres cannot store, in strings and string maps, naming the field', () => {
    const read = new FieldReader({ s: 'a\u0000', m: { K: '\ud800' }, k: { 'A\u0000': 'v' } }, 'p.');
    expect(failure(() => read.string('s')).message).toBe('p.s must not contain NUL characters');
    expect(failure(() => read.stringMap('m')).message).toBe(
      'p.m.K must not contain unpaired UTF-16 surrogates',
    );
    expect(failure(() => read.stringMap('k')).message).toBe(
      'p.k keys must not contain NUL characters',
    );
  });
});
