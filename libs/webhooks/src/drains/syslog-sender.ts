import { Inject, Injectable } from '@nestjs/common';
import net from 'node:net';
import tls from 'node:tls';
import { guardedLookup, parseIp, RefusedDestination } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { deliveryError, refusal } from '../webhook-sender';
import type { DrainTarget } from './log-drain-spec';

/** How long a written batch waits for the receiver to close its side. */
const CLOSE_GRACE_MS = 2000;

/** What one batch sent to a syslog receiver came to: null, or why it failed. */
export type SyslogResult = { error: string | null };

/**
 * Sends frames to a syslog receiver over TCP or TLS: one connection per batch, the destination
 * checked by the webhooks' guard (and `WEBHOOK_ALLOWED_HOSTS`), a connect timeout and a total one.
 * The batch counts as accepted when all of it was written and the connection then closed without
 * an error, or stayed quiet for {@link CLOSE_GRACE_MS} (a receiver that keeps its side open must
 * not have every batch sent again). Syslog over TCP has no acknowledgement: at-least-once stops
 * at the receiver's socket.
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
        clearTimeout(grace);
        socket.destroy();
        resolve({ error });
      };
      const connect = setTimeout(
        () => finish(`connect timed out after ${connectTimeoutMs} ms`),
        connectTimeoutMs,
      );
      const total = setTimeout(() => finish(`timed out after ${timeoutMs} ms`), timeoutMs);
      let grace: NodeJS.Timeout | undefined;
      socket.once('finish', () => {
        grace = setTimeout(() => finish(null), CLOSE_GRACE_MS);
      });
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
