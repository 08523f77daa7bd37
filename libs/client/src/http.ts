import { KilnError } from './errors';

export interface TransportOptions {
  url: string;
  token: string;
  /** Extra tries of an idempotent call after a 503, a 408 or a network error. */
  retries: number;
  /** First backoff, ms; doubled each try (with jitter), at most `maxRetryDelayMs`. */
  retryDelayMs: number;
  maxRetryDelayMs: number;
  /** Per-request time limit, ms (not for streams). */
  timeoutMs: number;
  userAgent: string;
}

export interface Call {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path under the API's root, e.g. `/2/projects/…/tasks`. */
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** Sent as JSON. */
  json?: unknown;
  /** Sent as is (with `headers` saying what it is); never retried. */
  body?: ReadableStream<Uint8Array>;
  headers?: Record<string, string>;
  /** Safe to send twice: retried on 503, 408 and network errors. */
  idempotent: boolean;
  signal?: AbortSignal;
  /** No per-request timeout (a stream that stays open). */
  streaming?: boolean;
  /** This call's time limit, ms, instead of the client's (a call that waits on the server). */
  timeoutMs?: number;
  /** Statuses besides 2xx handed back as answers rather than thrown (an invoke's 504). */
  answers?: number[];
}

/**
 * HTTP with Node's own `fetch`: IronWorker's `OAuth` header, Kiln's `{"msg"}` errors as
 * `KilnError`, and retries with exponential backoff (honouring `Retry-After`) where a call is
 * idempotent. A call that is not idempotent is retried only when the connection was refused,
 * i.e. the request never reached Kiln.
 */
export class Transport {
  constructor(private readonly options: TransportOptions) {}

  /** The call's answer, 2xx (or one of `answers`); anything else is thrown as a `KilnError`. */
  async send(call: Call): Promise<Response> {
    const label = `${call.method} ${call.path}`;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.once(call);
      } catch (error) {
        if (call.signal?.aborted) throw call.signal.reason;
        const refused = causeCode(error) === 'ECONNREFUSED';
        const timedOut = (error as Error).name === 'TimeoutError';
        const msg = timedOut
          ? `no answer within ${call.timeoutMs ?? this.options.timeoutMs} ms`
          : `${(error as Error).message}${causeCode(error) ? ` (${causeCode(error)})` : ''}`;
        if (attempt < this.options.retries && !call.body && (call.idempotent || refused)) {
          await this.pause(attempt, undefined, call.signal);
          continue;
        }
        throw new KilnError(0, `cannot reach Kiln at ${this.options.url}: ${msg}`, label);
      }
      if (res.ok || call.answers?.includes(res.status)) return res;
      const retryable = res.status === 503 || res.status === 408;
      if (retryable && call.idempotent && !call.body && attempt < this.options.retries) {
        await res.body?.cancel().catch(() => undefined);
        await this.pause(attempt, res.headers.get('retry-after'), call.signal);
        continue;
      }
      throw new KilnError(res.status, await errorMessage(res), label);
    }
  }

  /** `send`, then the JSON answer. */
  async json<T>(call: Call): Promise<T> {
    const res = await this.send(call);
    const text = await res.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new KilnError(
        res.status,
        `expected JSON, got: ${text.slice(0, 200)}`,
        `${call.method} ${call.path}`,
      );
    }
  }

  /** `send`, then the text answer. */
  async text(call: Call): Promise<string> {
    return (await this.send(call)).text();
  }

  private once(call: Call): Promise<Response> {
    const url = new URL(this.options.url + call.path);
    for (const [key, value] of Object.entries(call.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = {
      authorization: `OAuth ${this.options.token}`,
      'user-agent': this.options.userAgent,
      ...call.headers,
    };
    let body: string | ReadableStream<Uint8Array> | undefined = call.body;
    if (call.json !== undefined) {
      body = JSON.stringify(call.json);
      headers['content-type'] = 'application/json';
    }
    const signals = [
      call.signal,
      call.streaming ? undefined : AbortSignal.timeout(call.timeoutMs ?? this.options.timeoutMs),
    ];
    const present = signals.filter((signal): signal is AbortSignal => signal !== undefined);
    const init: RequestInit & { duplex?: 'half' } = {
      method: call.method,
      headers,
      body,
      signal: present.length > 0 ? AbortSignal.any(present) : undefined,
    };
    if (call.body) init.duplex = 'half';
    return fetch(url, init);
  }

  private async pause(
    attempt: number,
    retryAfter: string | null | undefined,
    signal?: AbortSignal,
  ) {
    const exp = Math.min(this.options.maxRetryDelayMs, this.options.retryDelayMs * 2 ** attempt);
    let ms = exp / 2 + Math.random() * (exp / 2);
    const seconds = retryAfter ? Number(retryAfter) : NaN;
    if (Number.isFinite(seconds) && seconds >= 0) {
      ms = Math.min(seconds * 1000, this.options.maxRetryDelayMs);
    }
    await sleep(ms, signal);
  }
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

async function errorMessage(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { msg?: unknown };
    if (typeof body.msg === 'string') return body.msg;
  } catch {
    // not JSON: the text itself, or the status line
  }
  return text.trim().slice(0, 500) || res.statusText || `HTTP ${res.status}`;
}

/** The system error code under fetch's `TypeError` (`ECONNREFUSED`, …), if any. */
function causeCode(error: unknown): string | undefined {
  const cause = (error as { cause?: { code?: unknown; errors?: { code?: unknown }[] } }).cause;
  const code = cause?.code ?? cause?.errors?.[0]?.code;
  return typeof code === 'string' ? code : undefined;
}
