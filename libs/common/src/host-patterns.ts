import { parseCommaList } from './text';

/**
 * Host patterns of `KILN_IMAGE_REGISTRIES`: `registry.example.com`, `registry.example.com:5000`,
 * `*.example.com` (any name under it), `*` (any host), `127.0.0.1:*` (any port), `[::1]:5000`.
 * An entry without a port matches only a host named without one (the registry's default port).
 */
export interface HostPattern {
  /** Lowercased; `*`, `*.<domain>` or a literal name or address (IPv6 without brackets). */
  host: string;
  /** `null`: no port named; `'*'`: any port or none. */
  port: number | '*' | null;
}

export function parseHostPatterns(text: string): { entries: HostPattern[]; bad: string[] } {
  return parseCommaList(text, parseHostPattern);
}

const NAME = /^(\*|(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)$/;

function parseHostPattern(item: string): HostPattern | null {
  const match =
    /^\[([0-9a-f:.]+)\](?::(\d{1,5}|\*))?$/i.exec(item) ?? /^([^:]+)(?::(\d{1,5}|\*))?$/.exec(item);
  if (!match) return null;
  const host = match[1].toLowerCase();
  if (!item.startsWith('[') && !NAME.test(host)) return null;
  const port = match[2] === undefined ? null : match[2] === '*' ? '*' : Number(match[2]);
  if (typeof port === 'number' && (port < 1 || port > 65535)) return null;
  return { host, port };
}

/** Splits `host[:port]` or `[v6][:port]` as image references name a registry. */
export function splitHostPort(value: string): { host: string; port: number | null } {
  const match = /^\[([^\]]+)\](?::(\d+))?$/.exec(value) ?? /^([^:]*)(?::(\d+))?$/.exec(value);
  if (!match) return { host: value.toLowerCase(), port: null };
  return { host: match[1].toLowerCase(), port: match[2] === undefined ? null : Number(match[2]) };
}

/** Whether `pattern` matches a registry named `host` (with `port`, null when none is named). */
export function hostPatternMatches(
  pattern: HostPattern,
  host: string,
  port: number | null,
): boolean {
  if (pattern.port !== '*' && pattern.port !== port) return false;
  const name = host.toLowerCase();
  if (pattern.host === '*') return true;
  if (pattern.host.startsWith('*.')) return name.endsWith(pattern.host.slice(1));
  return pattern.host === name;
}

/** A pattern naming its host literally (no `*` in the host part). */
export function isLiteralHostPattern(pattern: HostPattern): boolean {
  return !pattern.host.includes('*');
}
