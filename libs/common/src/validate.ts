import { KilnException } from './errors';

export type JsonObject = Record<string, unknown>;

export function isPlainObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function requireObject(value: unknown, what: string): JsonObject {
  if (!isPlainObject(value)) throw KilnException.badRequest(`${what} must be a JSON object`);
  return value;
}

interface IntRule {
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

  /** A number, rounded to an integer; `undefined` when absent. Range violations are 400s. */
  int(name: string, rule: IntRule = {}): number | undefined {
    const value = this.source[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value))
      throw this.wrongType(name, 'a number');
    const rounded = Math.round(value);
    if (rule.min !== undefined && rounded < rule.min) {
      throw KilnException.badRequest(`${this.label(name)} must be at least ${rule.min}`);
    }
    if (rule.max !== undefined && rounded > rule.max) {
      throw KilnException.badRequest(`${this.label(name)} must be at most ${rule.max}`);
    }
    return rounded;
  }

  /** A number that clients are known to send out of range to mean "unset": out of range → undefined. */
  lenientInt(name: string, min: number, max: number): number | undefined {
    const value = this.int(name);
    return value === undefined || value < min || value > max ? undefined : value;
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

  private wrongType(name: string, expected: string): KilnException {
    return KilnException.badRequest(`${this.label(name)} must be ${expected}`);
  }
}
