import { createHmac, timingSafeEqual } from 'node:crypto';
import { WebhookMessage } from './types';

/** A webhook request that is not Kiln's: a bad or missing signature, an old timestamp, no JSON. */
export class WebhookVerificationError extends Error {
  override name = 'WebhookVerificationError';
}

/** A request's headers: the Fetch API's `Headers`, or Node's `req.headers`. */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

export interface VerifyOptions {
  /** Largest difference between `webhook-timestamp` and now, seconds (replays). Default 300. */
  toleranceSeconds?: number;
  /** The time to compare with. Default now. */
  now?: Date;
}

/**
 * Checks a webhook request the way Standard Webhooks says (`webhook-id`, `webhook-timestamp`,
 * `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`) and returns its event.
 * `body` must be the raw body as received; `secret` the `whsec_…` of the subscription (or the
 * project's task secret for a task's own `webhook`), or several while you switch after a rotation.
 * Throws `WebhookVerificationError` when no signature matches or the timestamp is out of tolerance.
 * @example const event = verifyWebhook(rawBody, req.headers, 'whsec_…'); // the secret `webhooks.create` returned
 */
export function verifyWebhook(
  body: string | Uint8Array,
  headers: WebhookHeaders,
  secret: string | string[],
  options: VerifyOptions = {},
): WebhookMessage {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError(
      'missing webhook-id, webhook-timestamp or webhook-signature',
    );
  }
  const seconds = Number(timestamp);
  const now = (options.now ?? new Date()).getTime() / 1000;
  if (!/^\d+$/.test(timestamp) || Math.abs(now - seconds) > (options.toleranceSeconds ?? 300)) {
    throw new WebhookVerificationError(`webhook-timestamp ${timestamp} is out of tolerance`);
  }
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);
  const given = signatures
    .split(' ')
    .filter((part) => part.startsWith('v1,'))
    .map((part) => Buffer.from(part.slice(3), 'base64'));
  const matches = [secret].flat().some((key) => {
    const expected = createHmac('sha256', Buffer.from(key.replace(/^whsec_/, ''), 'base64'))
      .update(`${id}.${timestamp}.`)
      .update(bytes)
      .digest();
    return given.some((mac) => mac.length === expected.length && timingSafeEqual(mac, expected));
  });
  if (!matches) throw new WebhookVerificationError('no signature matches the secret');
  try {
    return JSON.parse(bytes.toString('utf8')) as WebhookMessage;
  } catch {
    throw new WebhookVerificationError('the body is not JSON');
  }
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') {
    return (headers as Headers).get(name) ?? undefined;
  }
  const value = (headers as Record<string, string | string[] | undefined>)[name];
  return Array.isArray(value) ? value[0] : value;
}
