import { Transport } from './http';
import { compact } from './paging';
import { CreatedLogDrain, LogDrain, LogDrainChanges, Message, NewLogDrain } from './types';

/**
 * Receivers of the project's task output, every line as it is printed, tagged with task, code and
 * stream: syslog over TCP or TLS, or HTTPS (signed JSON lines; check them with `verifyWebhook`'s
 * signature rules). `kiln.logDrains`.
 */
export class LogDrains {
  constructor(
    private readonly http: Transport,
    private readonly base: string,
  ) {}

  /**
   * Adds a drain. An `https` drain's answer holds its signing `secret` (`whsec_…`), shown this once.
   * @example await kiln.logDrains.create({ url: 'syslog+tls://logs.example.com:6514', codeName: 'hello' });
   */
  async create(drain: NewLogDrain): Promise<CreatedLogDrain> {
    return this.http.json<CreatedLogDrain>({
      method: 'POST',
      path: `${this.base}/log_drains`,
      json: drainBody(drain),
      idempotent: false,
    });
  }

  /** Every drain of the project, oldest first (no secrets). */
  async list(): Promise<LogDrain[]> {
    const { log_drains } = await this.http.json<{ log_drains: LogDrain[] }>({
      method: 'GET',
      path: `${this.base}/log_drains`,
      idempotent: true,
    });
    return log_drains;
  }

  async get(id: string): Promise<LogDrain> {
    return this.http.json<LogDrain>({ method: 'GET', path: this.path(id), idempotent: true });
  }

  /** Changes the given fields; a new URL starts afresh. */
  async update(id: string, changes: LogDrainChanges): Promise<LogDrain> {
    return this.http.json<LogDrain>({
      method: 'PATCH',
      path: this.path(id),
      json: drainBody(changes),
      idempotent: true,
    });
  }

  async delete(id: string): Promise<Message> {
    return this.http.json<Message>({ method: 'DELETE', path: this.path(id), idempotent: true });
  }

  private path(id: string): string {
    return `${this.base}/log_drains/${encodeURIComponent(id)}`;
  }
}

function drainBody(drain: LogDrainChanges): Record<string, unknown> {
  return compact({ url: drain.url, code_name: drain.codeName });
}
