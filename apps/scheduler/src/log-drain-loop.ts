import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Sleeper } from '@kiln/common';
import { LogDrainShipper } from '@kiln/webhooks';
import { LeaderLease } from './leader-lease';

const PASS_EVERY_MS = 500;

/**
 * Runs the log drains' shipper on the leader only: one shipper per stack, so a drain's cursors
 * move in one place and its receiver gets each batch once (barring a failover mid-batch). The
 * leader and not each worker: a worker that dies would leave its tasks' lines unsent, and the
 * workers keep nothing on their tasks' path for drains. Its own loop beside the leader's, so a
 * slow receiver never holds up schedule firing.
 */
@Injectable()
export class LogDrainLoop implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(LogDrainLoop.name);
  private readonly sleeper = new Sleeper();
  private loop: Promise<void> | undefined;

  constructor(
    private readonly lease: LeaderLease,
    private readonly shipper: LogDrainShipper,
  ) {}

  onApplicationBootstrap(): void {
    this.loop = this.run();
  }

  async onApplicationShutdown(): Promise<void> {
    this.sleeper.stop();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.sleeper.stopped) {
      if (this.lease.isLeader()) {
        try {
          await this.shipper.shipAll();
        } catch (error) {
          this.logger.warn(`log drains: ${(error as Error).message}`);
        }
      }
      await this.sleeper.sleep(PASS_EVERY_MS);
    }
  }
}
