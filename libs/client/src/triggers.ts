import { Transport } from './http';
import { compact } from './paging';
import { CreatedTrigger, Message, Trigger, TriggerOptions } from './types';

/**
 * Per-code trigger URLs (incoming webhooks): a POST to one, with no token, queues a task of its
 * code with the request body as payload. `kiln.triggers`; codes by id (`codes.get`, `codes.list`).
 */
export class Triggers {
  constructor(
    private readonly http: Transport,
    private readonly base: string,
  ) {}

  /**
   * A new trigger URL for code `codeId`. Its `url` (holding `?secret=`) and `secret` are shown
   * this once; hand the URL to the service that should start tasks.
   * @example const { url } = await kiln.triggers.create(codeId, { hmacHeader: 'X-Hub-Signature-256', hmacSecret, hmacPrefix: 'sha256=' });
   */
  async create(codeId: string, options: TriggerOptions = {}): Promise<CreatedTrigger> {
    return this.http.json<CreatedTrigger>({
      method: 'POST',
      path: this.path(codeId),
      json: compact({
        hmac_header: options.hmacHeader,
        hmac_secret: options.hmacSecret,
        hmac_prefix: options.hmacPrefix,
        hmac_encoding: options.hmacEncoding,
        cluster: options.cluster,
      }),
      idempotent: false,
    });
  }

  /** The code's live triggers (`url` without the secret). */
  async list(codeId: string): Promise<Trigger[]> {
    const { triggers } = await this.http.json<{ triggers: Trigger[] }>({
      method: 'GET',
      path: this.path(codeId),
      idempotent: true,
    });
    return triggers;
  }

  /** Revokes a trigger: its URL answers 401 from then on. */
  async revoke(codeId: string, triggerId: string): Promise<Message> {
    return this.http.json<Message>({
      method: 'DELETE',
      path: `${this.path(codeId)}/${encodeURIComponent(triggerId)}`,
      idempotent: true,
    });
  }

  private path(codeId: string): string {
    return `${this.base}/codes/${encodeURIComponent(codeId)}/triggers`;
  }
}
