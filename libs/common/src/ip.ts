import { isIP } from 'node:net';
import { parseCommaList } from './text';

/**
 * IP address arithmetic for the outgoing-webhook guard: addresses as bigints, CIDR ranges, the
 * ranges no webhook may reach unless allow-listed, and the `WEBHOOK_ALLOWED_HOSTS` allow-list.
 */

export interface IpAddress {
  family: 4 | 6;
  value: bigint;
}

/** Parses an IPv4 or IPv6 literal (IPv6 may be bracketed or carry a zone); null if it is none. */
export function parseIp(text: string): IpAddress | null {
  let address = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const zone = address.indexOf('%');
  if (zone >= 0) address = address.slice(0, zone);
  const family = isIP(address);
  if (family === 4) {
    const value = address.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
    return { family: 4, value };
  }
  if (family === 6) return { family: 6, value: parseIpv6(address) };
  return null;
}

function parseIpv6(address: string): bigint {
  let text = address.toLowerCase();
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two hex groups.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    const v4 = parseIp(quad[1])!.value;
    text = `${text.slice(0, -quad[1].length)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = [
    ...headGroups,
    ...Array<string>(tail === undefined ? 0 : missing).fill('0'),
    ...tailGroups,
  ];
  return groups.reduce((acc, group) => (acc << 16n) | BigInt(parseInt(group, 16)), 0n);
}

export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) {
    return [24n, 16n, 8n, 0n].map((shift) => String((ip.value >> shift) & 0xffn)).join('.');
  }
  const groups: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) {
    groups.push(((ip.value >> shift) & 0xffffn).toString(16));
  }
  return groups.join(':');
}

export interface Cidr {
  family: 4 | 6;
  base: bigint;
  bits: number;
}

/** `10.0.0.0/8`, `fc00::/7`, or a bare address (a /32 or /128); null if malformed. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!ip) return null;
  const width = ip.family === 4 ? 32 : 128;
  const bitsText = slash < 0 ? String(width) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText)) return null;
  const bits = Number(bitsText);
  if (bits > width) return null;
  const mask = prefixMask(ip.family, bits);
  return { family: ip.family, base: ip.value & mask, bits };
}

function prefixMask(family: 4 | 6, bits: number): bigint {
  const width = BigInt(family === 4 ? 32 : 128);
  const all = (1n << width) - 1n;
  return bits === 0 ? 0n : (all << (width - BigInt(bits))) & all;
}

export function inCidr(ip: IpAddress, cidr: Cidr): boolean {
  return ip.family === cidr.family && (ip.value & prefixMask(cidr.family, cidr.bits)) === cidr.base;
}

/**
 * The IPv4 address an IPv6 address stands for, if it embeds one: IPv4-mapped (`::ffff:a.b.c.d`),
 * IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002:AABB:CCDD::/16`).
 */
export function embeddedIpv4(ip: IpAddress): IpAddress | null {
  if (ip.family !== 6) return null;
  const low32 = ip.value & 0xffffffffn;
  const high96 = ip.value >> 32n;
  if (high96 === 0xffffn || (high96 === 0n && low32 > 1n)) return { family: 4, value: low32 };
  if (ip.value >> 32n === 0x0064ff9b0000000000000000n) return { family: 4, value: low32 };
  if (ip.value >> 112n === 0x2002n) return { family: 4, value: (ip.value >> 80n) & 0xffffffffn };
  return null;
}

/** Ranges no webhook may reach (why each is refused, for the delivery's `error`). */
const REFUSED: [string, string][] = [
  ['0.0.0.0/8', 'an unspecified ("this network") address'],
  ['10.0.0.0/8', 'a private address'],
  ['100.64.0.0/10', 'a carrier-grade NAT address'],
  ['127.0.0.0/8', 'a loopback address'],
  ['169.254.0.0/16', 'a link-local (cloud metadata) address'],
  ['172.16.0.0/12', 'a private address'],
  ['192.0.0.0/24', 'an IETF protocol address'],
  ['192.0.2.0/24', 'a documentation address'],
  ['192.88.99.0/24', 'a 6to4 relay address'],
  ['192.168.0.0/16', 'a private address'],
  ['198.18.0.0/15', 'a benchmarking address'],
  ['198.51.100.0/24', 'a documentation address'],
  ['203.0.113.0/24', 'a documentation address'],
  ['224.0.0.0/4', 'a multicast address'],
  ['240.0.0.0/4', 'a reserved address'],
  ['::/128', 'an unspecified address'],
  ['::1/128', 'a loopback address'],
  ['100::/64', 'a discard address'],
  ['2001:db8::/32', 'a documentation address'],
  ['fc00::/7', 'a unique-local (private) address'],
  ['fe80::/10', 'a link-local address'],
  ['fec0::/10', 'a site-local address'],
  ['ff00::/8', 'a multicast address'],
];
const REFUSED_CIDRS = REFUSED.map(([cidr, why]) => ({ cidr: parseCidr(cidr)!, why }));

/** Why a webhook must not connect to `ip`, or null if it is a public address. */
export function refusedAddressReason(ip: IpAddress): string | null {
  const v4 = embeddedIpv4(ip);
  if (v4) return refusedAddressReason(v4);
  return REFUSED_CIDRS.find(({ cidr }) => inCidr(ip, cidr))?.why ?? null;
}

/** One `WEBHOOK_ALLOWED_HOSTS` entry: a host name, an address or a CIDR, optionally with a port. */
export type AllowEntry =
  | { kind: 'host'; host: string; port: number | null }
  | { kind: 'cidr'; cidr: Cidr; port: number | null };

/**
 * Parses `WEBHOOK_ALLOWED_HOSTS`: comma-separated `hooks.internal`, `hooks.internal:8443`,
 * `10.1.2.3`, `127.0.0.1:9000`, `[::1]:9000`, `10.0.0.0/8`, `fd00::/8`. Returns the entries and
 * the ones it could not read.
 */
export function parseAllowList(text: string): { entries: AllowEntry[]; bad: string[] } {
  return parseCommaList(text, parseAllowEntry);
}

function parseAllowEntry(item: string): AllowEntry | null {
  if (item.includes('/')) {
    const cidr = parseCidr(item);
    return cidr ? { kind: 'cidr', cidr, port: null } : null;
  }
  let host = item;
  let port: number | null = null;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(item);
  if (bracketed) {
    host = bracketed[1];
    port = bracketed[2] === undefined ? null : Number(bracketed[2]);
  } else if (item.split(':').length === 2) {
    const [name, portText] = item.split(':');
    if (!/^\d+$/.test(portText)) return null;
    host = name;
    port = Number(portText);
  }
  if (port !== null && (port < 1 || port > 65535)) return null;
  const cidr = parseCidr(host);
  if (cidr) return { kind: 'cidr', cidr, port };
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(host)) return null;
  return { kind: 'host', host: host.toLowerCase(), port };
}

/**
 * Whether the allow-list lets a webhook to `hostname:port` connect to `address`: a host entry
 * matches the URL's host name (whatever it resolves to), an address or CIDR entry the address.
 */
export function isAllowListed(
  entries: readonly AllowEntry[],
  hostname: string,
  port: number,
  address: IpAddress,
): boolean {
  const host = hostname.toLowerCase();
  return entries.some((entry) => {
    if (entry.port !== null && entry.port !== port) return false;
    if (entry.kind === 'host') return entry.host === host;
    return inCidr(address, entry.cidr) || inCidr(embeddedIpv4(address) ?? address, entry.cidr);
  });
}

const LOCAL = ['127.0.0.0/8', '0.0.0.0/32', '::1/128', '::/128'].map((cidr) => parseCidr(cidr)!);

/** Whether `ip` is this host itself: loopback, or the unspecified address (which reaches it too). */
export function isOwnHostAddress(ip: IpAddress): boolean {
  const v4 = embeddedIpv4(ip) ?? ip;
  return LOCAL.some((cidr) => inCidr(v4, cidr) || inCidr(ip, cidr));
}
