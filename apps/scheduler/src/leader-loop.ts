import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { isDatabaseUnavailable } from '@kiln/database';
import { DatabaseContact } from './database-contact';
import { LeaderLease } from './leader-lease';
import { Reconciler } from './reconciler';
import { ScheduleFirer } from './schedule-firer';

const FIRE_EVERY_MS = 250;

/** What the leader does, on a beat: fire due schedules often, reconcile every few ticks. */
@Injectable()
export class LeaderLoop implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(LeaderLoop.name);
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly lease: LeaderLease,
    private readonly firer: ScheduleFirer,
    private readonly reconciler: Reconciler,
    private readonly contact: DatabaseContact,
  ) {}

  onApplicationBootstrap(): void {
    this.loop = this.run();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    let lastReconcile = 0;
    while (!this.stopped) {
      if (this.lease.isLeader()) {
        await this.step('fire', () => this.firer.fireDue());
        if (Date.now() - lastReconcile >= this.config.scheduler.reconcileSeconds * 1000) {
          lastReconcile = Date.now();
          await this.step('reconcile', () => this.reconciler.reconcile());
        }
      }
      await new Promise((resolve) => setTimeout(resolve, FIRE_EVERY_MS));
    }
  }

  private async step(name: string, work: () => Promise<unknown>): Promise<void> {
    try {
      await work();
    } catch (error) {
      if (isDatabaseUnavailable(error)) this.contact.lost();
      this.logger.warn(`${name} failed: ${(error as Error).message}`);
    }
  }
}
