import { Inject, Injectable } from '@nestjs/common';
import net from 'node:net';
import tls from 'node:tls';
import { guardedLookup, parseIp, RefusedDestination } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { deliveryError, refusal } from '../webhook-sender';
import type { DrainTarget } from './log-drain-spec';

/** What one batch sent to a syslog receiver came to: null, or why it failed. */
export type SyslogResult = { error: string | null };

/**
 * Sends frames to a syslog receiver over TCP or TLS: one connection per batch, the destination
 * checked by the webhooks' guard (and `WEBHOOK_ALLOWED_HOSTS`), a connect timeout and a total one.
 * The batch counts as accepted when the receiver has read all of it and the connection closed
 * without an error (syslog over TCP has no acknowledgement; at-least-once stops there).
 */
@Injectable()
export class SyslogSender {
  constructor(@Inject(KILN_CONFIG) private readonly config: KilnConfig) {}

  async send(target: DrainTarget, payload: string): Promise<SyslogResult> {
    const allowed = this.config.webhooks.allowedHosts;
    if (parseIp(target.host)) {
      const why = refusal(allowed, target.host, target.port, target.host);
      if (why) return { error: why };
    }
    const lookup = guardedLookup((hostname, address) =>
      refusal(allowed, hostname, target.port, address),
    );
    const connectTimeoutMs = this.config.webhooks.connectTimeoutMs;
    const timeoutMs = this.config.webhooks.timeoutMs;
    return new Promise<SyslogResult>((resolve) => {
      let settled = false;
      const socket =
        target.kind === 'syslog+tls'
          ? tls.connect({
              host: target.host,
              port: target.port,
              servername: parseIp(target.host) ? undefined : target.host,
              lookup,
            })
          : net.connect({ host: target.host, port: target.port, lookup });
      const finish = (error: string | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(connect);
        clearTimeout(total);
        socket.destroy();
        resolve({ error });
      };
      const connect = setTimeout(
        () => finish(`connect timed out after ${connectTimeoutMs} ms`),
        connectTimeoutMs,
      );
      const total = setTimeout(() => finish(`timed out after ${timeoutMs} ms`), timeoutMs);
      socket.once(target.kind === 'syslog+tls' ? 'secureConnect' : 'connect', () => {
        clearTimeout(connect);
        socket.end(payload);
      });
      // The receiver never answers: what it sends is read and thrown away.
      socket.on('data', () => undefined);
      socket.once('error', (error: Error) =>
        finish(error instanceof RefusedDestination ? error.message : deliveryError(error)),
      );
      socket.once('close', (hadError) =>
        finish(hadError ? 'connection closed with an error' : null),
      );
    });
  }
}
