import { setMaxListeners } from 'node:events';
import { BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';

/**
 * How the API stops on SIGTERM without failing a request (a rolling restart behind a load
 * balancer): for `KILN_API_DRAIN_SECONDS` it keeps serving while `/healthz` answers 503
 * `draining` and every answer carries `Connection: close` (the balancer takes it out and opens
 * its next connections elsewhere); then it ends its live-log streams (`ended`: clients resume on
 * another replica with `Last-Event-ID`). Nest then stops the server listening and waits for the
 * requests it still holds.
 */
@Injectable()
export class ApiDrain implements BeforeApplicationShutdown {
  private readonly logger = new Logger(ApiDrain.name);
  private readonly streams = new AbortController();
  private stopping = false;

  constructor(@Inject(KILN_CONFIG) private readonly config: KilnConfig) {
    // Every live-log stream listens to it (and stops listening when it ends): no leak warning.
    setMaxListeners(0, this.streams.signal);
  }

  get draining(): boolean {
    return this.stopping;
  }

  /** Aborted when the API ends its live-log streams. */
  get ended(): AbortSignal {
    return this.streams.signal;
  }

  /** Express middleware: once draining, every answer closes its connection. */
  middleware() {
    return (_req: Request, res: Response, next: NextFunction): void => {
      if (this.draining) res.setHeader('Connection', 'close');
      next();
    };
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    const seconds = this.config.api.drainSeconds;
    if (seconds > 0) {
      this.logger.log(`draining: serving ${seconds} s more while /healthz answers 503`);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    }
    this.streams.abort();
  }
}
