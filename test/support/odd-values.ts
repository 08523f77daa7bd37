import fc from 'fast-check';

/**
 * Odd values for property-based tests of input handling: what a sweep of the API would send —
 * huge, negative and fractional numbers, NUL and lone surrogates, empty and very long strings,
 * impossible dates, the wrong JSON type.
 */

/** Runs per property: `KILN_FUZZ_RUNS` (default 100); `npm run test:fuzz` runs many more. */
export const FUZZ_RUNS = Number(process.env.KILN_FUZZ_RUNS ?? 100);
/** A fixed seed so that `npm test` is repeatable; `KILN_FUZZ_SEED` explores others. */
export const FUZZ_SEED = Number(process.env.KILN_FUZZ_SEED ?? 20261130);

/** Jest's timeout for one property: two minutes, or more for a long run. */
export const FUZZ_TIMEOUT_MS = Math.max(120_000, FUZZ_RUNS * 300);

export function fuzzParameters<T>(): fc.Parameters<T> {
  return { numRuns: FUZZ_RUNS, seed: FUZZ_SEED, endOnFailure: true };
}

/** Numbers at and past every boundary the API has, mostly; any integer or double sometimes. */
export const oddNumber: fc.Arbitrary<number> = fc.oneof(
  {
    weight: 3,
    // Past Postgres `integer`, past the epoch seconds a Date can hold, past the safe integers.
    arbitrary: fc.constantFrom(
      9007199254740991,
      -9007199254740991,
      1e21,
      -1e21,
      2147483648,
      8.64e12,
    ),
  },
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      9007199254740991,
      -9007199254740991,
      1e21,
      -1e21,
      1e308,
      2147483647,
      2147483648,
      -2147483648,
      -2147483649,
      253402300799,
      253402300800,
      315360000,
      315360001,
      100000,
      100001,
      604800,
      604801,
      0,
      -0,
      -1,
      1,
      2,
      3,
      59,
      60,
      0.5,
      59.5,
      1e-7,
    ),
  },
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.maxSafeInteger(),
);

/** Strings Postgres or a parser may choke on, mostly; any string sometimes. */
export const oddString: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 2,
    // What Postgres text cannot hold, or UTF-8 cannot encode.
    arbitrary: fc.constantFrom('\u0000', 'a\u0000b', '\ud800', 'x\udc00y'),
  },
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      '',
      ' ',
      '\u0000',
      'a\u0000b',
      '\ud800',
      'x\udc00',
      '\ufeff',
      'x'.repeat(400),
      '9007199254740991',
      '-1',
      '1e21',
      '0x10',
      'NaN',
      'Infinity',
      'null',
      '{}',
      '%00',
      '../../etc/passwd',
      '0001-01-01T00:00:00Z',
      '1969-12-31T23:59:59Z',
      '1970-01-01T00:00:00Z',
      '2024-02-30T00:00:00Z',
      '2023-02-29T12:00:00Z',
      '2024-01-01T24:00:00Z',
      '2024-01-01T23:60:00Z',
      '2024-01-01T00:00:60Z',
      '2024-13-01T00:00:00Z',
      '2024-01-01T00:00:00+24:00',
      '9999-12-31T23:59:59Z',
      '9999-12-31T23:59:59-23:59',
      '+010000-01-01T00:00:00.000Z',
      '* * * * *',
      '61 * * * *',
      'Europe/Paris',
      'Mars/Olympus',
      'http://127.0.0.1:9/hook',
      'https://example.com/hook',
      'http://169.254.169.254/',
      'hex',
      'base64',
      'task.complete',
      'kiln-test/busybox:latest',
    ),
  },
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'binary', minLength: 200, maxLength: 500 }),
);

/** Any JSON value, odd ones weighted up. */
export const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: oddNumber, weight: 5 },
  { arbitrary: oddString, weight: 4 },
  { arbitrary: fc.constantFrom(null, true, false, [], {}, [1, 2], { a: 1 }), weight: 1 },
  { arbitrary: fc.array(oddString, { maxLength: 3 }), weight: 1 },
  { arbitrary: fc.dictionary(oddString, oddString, { maxKeys: 3 }), weight: 1 },
);

/**
 * A body that is `valid` with one to three of `fields` (or an unknown key) set to odd values:
 * most of the request stays valid, so the odd value reaches deep into the handler.
 */
export function oddFields(
  valid: Record<string, unknown>,
  fields: readonly string[],
): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .array(fc.tuple(fieldName(fields), oddValue), {
      minLength: 1,
      maxLength: 3,
    })
    .map((changes) => ({ ...valid, ...Object.fromEntries(changes) }));
}

/** One of `fields` mostly, an unknown key sometimes. */
function fieldName(fields: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...fields) }, oddString);
}

/** A query string (without `?`): odd values for known keys, and some that are odd themselves. */
export function oddQuery(fields: readonly string[]): fc.Arbitrary<string> {
  const pair = fc.tuple(fieldName(fields), fc.oneof(oddNumber.map(String), oddString));
  return fc.oneof(
    { arbitrary: fc.array(pair, { minLength: 1, maxLength: 4 }).map(encodeQuery), weight: 5 },
    {
      arbitrary: fc
        .tuple(fc.constantFrom(...fields), fc.constantFrom('%00', '%', '%ZZ', '%E0%A4%A', '%F0%9F'))
        .map(([key, raw]) => `${key}=${raw}`),
      weight: 1,
    },
    {
      arbitrary: fc.constantFrom(...fields).map((key) => `${key}=1&${key}=2`),
      weight: 1,
    },
  );
}

function encodeQuery(pairs: [string, string][]): string {
  return pairs.map(([key, value]) => `${encodePart(key)}=${encodePart(value)}`).join('&');
}

/** `encodeURIComponent`, with lone surrogates (which it refuses) sent as U+FFFD. */
export function encodePart(value: string): string {
  return encodeURIComponent(
    value.replace(/[\ud800-\udfff]/g, (unit, at: number) => {
      const code = unit.charCodeAt(0);
      const next = value.charCodeAt(at + 1);
      const prev = value.charCodeAt(at - 1);
      const paired =
        (code < 0xdc00 && next >= 0xdc00 && next <= 0xdfff) ||
        (code >= 0xdc00 && prev >= 0xd800 && prev < 0xdc00);
      return paired ? unit : '\ufffd';
    }),
  );
}

/** Path ids: malformed, huge, NUL, or well-formed ids of nothing; plus `known` ones. */
export function oddId(known: readonly string[] = []): fc.Arbitrary<string> {
  const malformed = fc.oneof(
    fc.constantFrom(
      '0',
      '-1',
      '9007199254740991',
      'x'.repeat(400),
      '\u0000',
      'f'.repeat(24) + '\u0000',
      'F'.repeat(24),
      'g'.repeat(24),
      'null',
      'undefined',
      ' ',
    ),
    fc.string({ unit: 'binary', maxLength: 30 }),
    fc.stringMatching(/^[0-9a-f]{24}$/),
  );
  return known.length === 0 ? malformed : fc.oneof(malformed, fc.constantFrom(...known));
}

/** Raw request bodies that are not what a JSON route expects. */
export const oddRawBody: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    '{',
    '[]',
    '[1,2]',
    'null',
    '"x"',
    '1e999',
    '{"a":',
    '\u0000',
    '{"tasks":null}',
    '{"schedules":[null]}',
    '{"__proto__":{"x":1}}',
  ),
  fc.string({ unit: 'binary', maxLength: 60 }),
  oddValue.map((value) => JSON.stringify(value) ?? ''),
);
