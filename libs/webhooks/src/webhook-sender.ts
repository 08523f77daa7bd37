import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { lookup as dnsLookup } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import {
  AllowEntry,
  guardedLookup,
  isAllowListed,
  parseIp,
  RefusedDestination,
  refusedAddressReason,
  Resolver,
} from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';

/** What one POST got: a status code, or an error that kept it from getting one. */
export interface SendResult {
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  /** Set when the request was refused before any connection was made (SSRF guard). */
  refused: boolean;
  /**
   * Set when no connection could be made at all: a connect time-out, a refused connection, a
   * host that does not resolve or cannot be routed to. Such an endpoint is parked at once.
   */
  unreachable?: boolean;
}

/** The `code` of our own connect time-out error. */
const CONNECT_TIMEOUT_CODE = 'KILN_CONNECT_TIMEOUT';
/** The `code` of our own total time-out error. */
const TOTAL_TIMEOUT_CODE = 'KILN_TIMEOUT';

/** Error codes meaning that the endpoint could not be connected to. */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  CONNECT_TIMEOUT_CODE,
]);

export interface SendOptions {
  connectTimeoutMs: number;
  timeoutMs: number;
  /** Response bytes read at most; the rest is not waited for. */
  maxResponseBytes: number;
  allowedHosts: readonly AllowEntry[];
}

/**
 * Why `hostname:port` at `address` must not be reached, or null: private, loopback, link-local
 * (metadata), CGNAT, multicast, unspecified and their IPv6 forms (IPv4-mapped included) are
 * refused unless `WEBHOOK_ALLOWED_HOSTS` lets them through. The reason names the kind of address
 * only: it is stored on the delivery, where the project reads it, and must not tell the project
 * what an inside name resolves to.
 */
export function refusal(
  allowed: readonly AllowEntry[],
  hostname: string,
  port: number,
  address: string,
): string | null {
  const ip = parseIp(address);
  if (!ip) return 'destination not allowed (not an IP address)';
  const why = refusedAddressReason(ip);
  if (why === null || isAllowListed(allowed, hostname, port, ip)) return null;
  return `destination not allowed (${why}; see WEBHOOK_ALLOWED_HOSTS)`;
}

/** What the project is told for the codes of errors that kept a request from an answer. */
const ERROR_MESSAGES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by the endpoint',
  EPIPE: 'connection closed by the endpoint',
  ENOTFOUND: 'DNS lookup failed',
  EAI_AGAIN: 'DNS lookup failed (temporary)',
  EAI_FAIL: 'DNS lookup failed',
  EAI_NODATA: 'DNS lookup failed',
  EAI_NONAME: 'DNS lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EHOSTDOWN: 'host down',
  ETIMEDOUT: 'connection timed out',
};

/**
 * The error of a failed request as the project may read it (on its deliveries and the
 * subscription's `last_error`): Node's messages name the host and address it tried
 * (`connect ECONNREFUSED 10.0.0.5:80`, `getaddrinfo ENOTFOUND foo.internal`, a certificate's
 * names), which would tell a tenant about the platform's inside network; only the kind of
 * failure is kept. Kiln's own messages (timeouts, refusals) say nothing of the kind and pass.
 */
export function deliveryError(error: Error): string {
  if (error instanceof RefusedDestination) {
    return /^destination not allowed/.test(error.message)
      ? error.message
      : 'destination not allowed';
  }
  const code = (error as NodeJS.ErrnoException).code;
  if (code === CONNECT_TIMEOUT_CODE || code === TOTAL_TIMEOUT_CODE) return error.message;
  if (code === undefined || !/^[A-Z0-9_]{1,64}$/.test(code)) return 'request failed';
  const known = ERROR_MESSAGES[code];
  if (known) return known;
  if (/CERT|TLS|SSL|SELF_SIGNED|ALTNAME|EPROTO/.test(code)) return `TLS error (${code})`;
  if (code.startsWith('HPE_')) return `invalid HTTP answer (${code})`;
  return `request failed (${code})`;
}

/**
 * POSTs a webhook: no redirects followed (Node's http never does), a connect timeout and a total
 * timeout, the response read up to a cap, and the destination checked by {@link guardedLookup}
 * (or, for an address literal, before the request is made at all).
 */
export async function postWebhook(
  url: URL,
  headers: Record<string, string>,
  body: string,
  options: SendOptions,
  agents: { http: http.Agent; https: https.Agent },
  resolve: Resolver = dnsLookup,
): Promise<SendResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const literal = parseIp(url.hostname);
  if (literal) {
    const why = refusal(options.allowedHosts, url.hostname, port, url.hostname);
    if (why) return { statusCode: null, error: why, durationMs: elapsed(), refused: true };
  }
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<SendResult>((resolveResult) => {
    let settled = false;
    const finish = (result: Omit<SendResult, 'durationMs'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(total);
      resolveResult({ ...result, durationMs: elapsed() });
    };
    const request = client.request(url, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      agent: url.protocol === 'https:' ? agents.https : agents.http,
      lookup: guardedLookup(
        (hostname, address) => refusal(options.allowedHosts, hostname, port, address),
        resolve,
      ),
    });
    const total = setTimeout(() => {
      const error = new Error(`timed out after ${options.timeoutMs} ms`);
      request.destroy(Object.assign(error, { code: TOTAL_TIMEOUT_CODE }));
    }, options.timeoutMs);
    request.on('socket', (socket) => {
      if (!socket.connecting) return;
      const connect = setTimeout(() => {
        const error = new Error(`connect timed out after ${options.connectTimeoutMs} ms`);
        request.destroy(Object.assign(error, { code: CONNECT_TIMEOUT_CODE }));
      }, options.connectTimeoutMs);
      socket.once('connect', () => clearTimeout(connect));
      socket.once('close', () => clearTimeout(connect));
    });
    request.on('error', (error) => {
      const code = (error as NodeJS.ErrnoException).code;
      finish({
        statusCode: null,
        error: deliveryError(error),
        refused: error instanceof RefusedDestination,
        unreachable: code !== undefined && UNREACHABLE_CODES.has(code),
      });
    });
    request.on('response', (response) => {
      const statusCode = response.statusCode ?? 0;
      let read = 0;
      response.on('data', (chunk: Buffer) => {
        read += chunk.length;
        // Enough: the status is all that counts, and a huge answer must not hold a slot.
        if (read > options.maxResponseBytes) {
          response.destroy();
          finish({ statusCode, error: null, refused: false });
        }
      });
      response.on('end', () => finish({ statusCode, error: null, refused: false }));
      response.on('error', () => finish({ statusCode, error: null, refused: false }));
      response.on('close', () => finish({ statusCode, error: null, refused: false }));
    });
    request.end(body);
  });
}

/** The outgoing-HTTP adapter of webhook deliveries, with keep-alive agents shared by all. */
@Injectable()
export class WebhookSender implements OnApplicationShutdown {
  private readonly agents = {
    http: new http.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 16 }),
    https: new https.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 16 }),
  };

  constructor(@Inject(KILN_CONFIG) private readonly config: KilnConfig) {}

  async post(url: URL, headers: Record<string, string>, body: string): Promise<SendResult> {
    return postWebhook(
      url,
      headers,
      body,
      {
        connectTimeoutMs: this.config.webhooks.connectTimeoutMs,
        timeoutMs: this.config.webhooks.timeoutMs,
        maxResponseBytes: MAX_RESPONSE_BYTES,
        allowedHosts: this.config.webhooks.allowedHosts,
      },
      this.agents,
    );
  }

  onApplicationShutdown(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}

export const MAX_RESPONSE_BYTES = 64 * 1024;
