import type { Request } from 'express';
import { formatIp, parseIp } from '@kiln/common';

/**
 * The client a request comes from, as the failed-authentication limit counts it: Express's
 * `req.ip` (the peer, or the address `X-Forwarded-For` gives through `KILN_TRUSTED_PROXIES`), an
 * IPv4-mapped IPv6 address as its IPv4 address, and an IPv6 address by its /64, since one host
 * commonly holds a whole /64 and could otherwise change address at each attempt.
 */
export function clientAddress(req: Request): string {
  const raw = req.ip ?? req.socket.remoteAddress ?? '';
  const ip = parseIp(raw);
  if (!ip) return raw || 'unknown';
  if (ip.family === 4) return formatIp(ip);
  if (ip.value >> 32n === 0xffffn) return formatIp({ family: 4, value: ip.value & 0xffffffffn });
  return `${formatIp({ family: 6, value: (ip.value >> 64n) << 64n })}/64`;
}
