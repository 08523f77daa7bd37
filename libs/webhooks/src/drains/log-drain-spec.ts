import {
  AllowEntry,
  FieldReader,
  JsonObject,
  KilnException,
  isAllowListed,
  parseIp,
  refusedAddressReason,
} from '@kiln/common';

export const MAX_DRAIN_URL_BYTES = 2048;

export type DrainKind = 'https' | 'syslog+tcp' | 'syslog+tls';

/** A drain URL taken apart: what the shipper connects to. */
export interface DrainTarget {
  kind: DrainKind;
  host: string;
  port: number;
  /** The whole URL (HTTPS drains POST to it). */
  url: URL;
}

/** What a create or update asks for; undefined fields are left as they are (update). */
export interface LogDrainSpec {
  url?: string;
  codeName?: string | null;
}

/** The URL of a stored drain (checked when it was made). */
export function drainTarget(value: string): DrainTarget {
  const url = new URL(value);
  const kind = url.protocol.slice(0, -1) as DrainKind;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port || (kind === 'https' ? 443 : 0));
  return { kind, host, port, url };
}

/**
 * Checks a drain URL given by a user: `https://…`, `syslog+tcp://host:port` or
 * `syslog+tls://host:port` (a port, nothing after it), at most 2 KB, and not an address literal
 * the shipper would refuse anyway (the webhooks' guard and `WEBHOOK_ALLOWED_HOSTS`). A host name
 * is checked when it is resolved, at every connection.
 */
export function parseDrainUrl(value: string, allowed: readonly AllowEntry[]): string {
  if (Buffer.byteLength(value) > MAX_DRAIN_URL_BYTES) {
    throw KilnException.badRequest(`url must be at most ${MAX_DRAIN_URL_BYTES} bytes`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw KilnException.badRequest('url is not a valid URL');
  }
  const scheme = url.protocol.slice(0, -1);
  if (scheme !== 'https' && scheme !== 'syslog+tcp' && scheme !== 'syslog+tls') {
    throw KilnException.badRequest(
      'url must be an https://, syslog+tcp://host:port or syslog+tls://host:port URL',
    );
  }
  if (url.hostname === '') throw KilnException.badRequest('url must name a host');
  if (url.username !== '' || url.password !== '') {
    throw KilnException.badRequest('url must not hold a user name or password');
  }
  if (scheme !== 'https') {
    if (url.port === '') {
      throw KilnException.badRequest(`url must give a port: ${scheme}://host:port`);
    }
    if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
      throw KilnException.badRequest(
        `url must be ${scheme}://host:port, with nothing after the port`,
      );
    }
  }
  const target = drainTarget(url.toString());
  const ip = parseIp(target.host);
  if (ip) {
    const why = refusedAddressReason(ip);
    if (why && !isAllowListed(allowed, target.host, target.port, ip)) {
      throw KilnException.badRequest(
        `url points at ${target.host}, ${why}: drains may not reach it (see WEBHOOK_ALLOWED_HOSTS)`,
      );
    }
  }
  return scheme === 'https' ? url.toString() : `${scheme}://${url.host}`;
}

/** Parses a create (`partial` false: `url` required) or a PATCH body. */
export function parseLogDrainSpec(
  body: JsonObject,
  allowed: readonly AllowEntry[],
  partial: boolean,
): LogDrainSpec {
  const read = new FieldReader(body);
  const spec: LogDrainSpec = {};
  const url = partial ? read.string('url') : read.requiredString('url');
  if (url !== undefined) spec.url = parseDrainUrl(url, allowed);
  if (body.code_name === null) spec.codeName = null;
  else {
    const codeName = read.string('code_name', 255);
    if (codeName !== undefined) spec.codeName = codeName === '' ? null : codeName;
  }
  return spec;
}
