import { KilnException } from './errors';
import { AllowEntry, isAllowListed, parseIp, refusedAddressReason } from './ip';

export const MAX_WEBHOOK_URL_BYTES = 2048;

/**
 * Checks a webhook URL given by a user: http or https, at most 2 KB, and not an address literal
 * that deliveries would refuse anyway. A host name is checked when it is resolved, at every
 * delivery (its addresses may change).
 */
export function parseWebhookUrl(
  value: string,
  allowed: readonly AllowEntry[],
  field = 'url',
): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw KilnException.badRequest(`${field} is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw KilnException.badRequest(`${field} must be an http or https URL`);
  }
  if (Buffer.byteLength(value) > MAX_WEBHOOK_URL_BYTES) {
    throw KilnException.badRequest(`${field} must be at most ${MAX_WEBHOOK_URL_BYTES} bytes`);
  }
  const ip = parseIp(url.hostname);
  if (ip) {
    const why = refusedAddressReason(ip);
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    if (why && !isAllowListed(allowed, url.hostname, port, ip)) {
      throw KilnException.badRequest(
        `${field} points at ${url.hostname}, ${why}: webhooks may not reach it (see WEBHOOK_ALLOWED_HOSTS)`,
      );
    }
  }
  return url.toString();
}
