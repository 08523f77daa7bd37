import { KilnException } from './errors';

export type JsonObject = Record<string, unknown>;

export function isPlainObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function requireObject(value: unknown, what: string): JsonObject {
  if (!isPlainObject(value)) throw KilnException.badRequest(`${what} must be a JSON object`);
  return value;
}

export const INT32_MIN = -2_147_483_648;
export const INT32_MAX = 2_147_483_647;
/** 9999-12-31T23:59:59Z: the last second an RFC3339 time with a four-digit year can name. */
export const EPOCH_SECONDS_MAX = 253_402_300_799;

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/;

// Without the `u` flag a regex sees UTF-16 code units, so a high surrogate not followed by a low
// one (or a low one not preceded by a high one) is exactly a lone surrogate.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Why a string cannot be stored as it is, or undefined: Postgres `text` and `jsonb` refuse NUL,
 * and a lone UTF-16 surrogate has no UTF-8 form (the driver would silently store U+FFFD instead).
 */
export function textProblem(value: string): string | undefined {
  if (value.includes('\u0000')) return 'must not contain NUL characters';
  if (LONE_SURROGATE.test(value)) return 'must not contain unpaired UTF-16 surrogates';
  return undefined;
}

/** The 400 for an integer outside `min`..`max`, naming the field and the range; undefined if inside. */
export function rangeProblem(
  label: string,
  value: number,
  min: number,
  max: number,
): KilnException | undefined {
  const range = `(an integer from ${min} to ${max})`;
  if (value < min) return KilnException.badRequest(`${label} must be at least ${min} ${range}`);
  if (value > max) return KilnException.badRequest(`${label} must be at most ${max} ${range}`);
  return undefined;
}

/** An integer field's range; each bound defaults to Postgres `integer`'s. */
export interface IntRule {
  min?: number;
  max?: number;
}

/**
 * Reads fields from a parsed JSON object the way IronWorker's clients need: `null` means absent
 * (Go sends `null` for empty maps, Python for unset strings), numbers may be floats (Go sends
 * durations as float seconds), unknown keys are ignored, and a known field of the wrong type is a
 * 400 that names the field.
 */
export class FieldReader {
  constructor(
    private readonly source: JsonObject,
    private readonly prefix = '',
  ) {}

  has(name: string): boolean {
    return this.source[name] !== undefined && this.source[name] !== null;
  }

  string(name: string, maxBytes?: number): string | undefined {
    const value = this.source[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') throw this.wrongType(name, 'a string');
    this.checkText(name, value);
    if (maxBytes !== undefined && Buffer.byteLength(value) > maxBytes) {
      throw KilnException.tooLarge(`${this.label(name)} is larger than ${maxBytes} bytes`);
    }
    return value;
  }

  requiredString(name: string, maxBytes?: number): string {
    const value = this.string(name, maxBytes);
    if (value === undefined || value === '') {
      throw KilnException.badRequest(`${this.label(name)} is required`);
    }
    return value;
  }

  /**
   * A number, rounded to an integer; `undefined` when absent. Outside `rule` (by default Postgres
   * `integer`, -2147483648..2147483647) is a 400 naming the field and the range.
   */
  int(name: string, rule: IntRule = {}): number | undefined {
    const value = this.number(name);
    if (value === undefined) return undefined;
    const problem = rangeProblem(
      this.label(name),
      value,
      rule.min ?? INT32_MIN,
      rule.max ?? INT32_MAX,
    );
    if (problem) throw problem;
    return value;
  }

  /** A number that clients are known to send out of range to mean "unset": out of range → undefined. */
  lenientInt(name: string, min: number, max: number): number | undefined {
    const value = this.number(name);
    return value === undefined || value < min || value > max ? undefined : value;
  }

  /**
   * An RFC3339 time with any offset or fraction (Python's isoformat too; without an offset, UTC);
   * absent, `""` and the
   * zero time (`0001-01-01…`) mean unset. A date that does not exist (February 30, 24:00) is
   * refused rather than rolled over, and so is an instant outside
   * 1970-01-01T00:00:00Z..9999-12-31T23:59:59Z.
   */
  time(name: string): Date | undefined {
    const value = this.string(name, 64);
    if (value === undefined || value === '' || value.startsWith('0001-01-01')) return undefined;
    const parts = RFC3339.exec(value);
    const [year, month, day, hour, minute, second] = (parts?.slice(1, 7) ?? []).map(Number);
    const valid =
      parts !== null &&
      month >= 1 &&
      month <= 12 &&
      day >= 1 &&
      day <= new Date(Date.UTC(year, month, 0)).getUTCDate() &&
      hour <= 23 &&
      minute <= 59 &&
      (parts[6] === undefined || second <= 59) &&
      (parts[8] === undefined || /^(Z|[+-](0\d|1\d|2[0-3]):?[0-5]\d)$/.test(parts[8]));
    // No offset means UTC, whatever the server's time zone.
    const parsed = new Date(valid ? (parts[8] === undefined ? `${value}Z` : value) : NaN);
    if (Number.isNaN(parsed.getTime())) {
      throw KilnException.badRequest(`${this.label(name)} must be an RFC3339 time`);
    }
    const seconds = parsed.getTime() / 1000;
    if (seconds < 0 || seconds > EPOCH_SECONDS_MAX) {
      throw KilnException.badRequest(
        `${this.label(name)} must be from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z`,
      );
    }
    return parsed;
  }

  boolean(name: string): boolean | undefined {
    const value = this.source[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'boolean') throw this.wrongType(name, 'a boolean');
    return value;
  }

  /** An object whose values are all strings, e.g. `env_vars`. */
  stringMap(name: string, maxBytes?: number): Record<string, string> | undefined {
    const value = this.source[name];
    if (value === undefined || value === null) return undefined;
    if (!isPlainObject(value)) throw this.wrongType(name, 'an object of strings');
    const result: Record<string, string> = {};
    for (const [key, item] of Object.entries(value)) {
      if (typeof item !== 'string') {
        throw KilnException.badRequest(`${this.label(name)}.${key} must be a string`);
      }
      const keyProblem = textProblem(key);
      if (keyProblem) throw KilnException.badRequest(`${this.label(name)} keys ${keyProblem}`);
      this.checkText(`${name}.${key}`, item);
      result[key] = item;
    }
    if (maxBytes !== undefined && Buffer.byteLength(JSON.stringify(result)) > maxBytes) {
      throw KilnException.tooLarge(`${this.label(name)} is larger than ${maxBytes} bytes`);
    }
    return result;
  }

  label(name: string): string {
    return `${this.prefix}${name}`;
  }

  /** Any finite number, rounded (Go sends durations as float seconds). */
  private number(name: string): number | undefined {
    const value = this.source[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw this.wrongType(name, 'a number');
    }
    return Math.round(value);
  }

  private checkText(name: string, value: string): void {
    const problem = textProblem(value);
    if (problem) throw KilnException.badRequest(`${this.label(name)} ${problem}`);
  }

  private wrongType(name: string, expected: string): KilnException {
    return KilnException.badRequest(`${this.label(name)} must be ${expected}`);
  }
}
