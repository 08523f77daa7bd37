import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { EntityManager } from 'typeorm';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { isDatabaseUnavailable } from '@kiln/database';
import { LeaseStore } from '@kiln/schedules';

import { DatabaseContact } from './database-contact';

const LEASE = 'scheduler';

/**
 * Leader election in Postgres: one row, taken when free or expired and renewed by its holder,
 * with expiry on the database clock. `term` grows at every change of holder: it is the fencing
 * token that each fire checks inside its own transaction, so a leader that was paused (GC, SIGSTOP)
 * and lost the lease cannot act on stale belief.
 */
@Injectable()
export class LeaderLease implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(LeaderLease.name);
  private term: number | null = null;
  /** Monotonic deadline after which this process stops believing it leads without a renewal. */
  private believedUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly leases: LeaseStore,
    private readonly contact: DatabaseContact,
  ) {}

  get currentTerm(): number | null {
    return this.isLeader() ? this.term : null;
  }

  isLeader(): boolean {
    return this.term !== null && performance.now() < this.believedUntil;
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.renew();
    this.schedule();
  }

  /**
   * The holder renews every third of the lease; the others try every 250 ms, so a lease that
   * runs out is taken over at once.
   */
  private schedule(): void {
    const delay = this.term === null ? 250 : (this.config.scheduler.leaseSeconds * 1000) / 3;
    this.timer = setTimeout(() => {
      this.renewing = this.renew().then(() => {
        if (!this.stopped) this.schedule();
      });
    }, delay);
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.renewing;
    if (this.term === null) return;
    // Hand over at once instead of making the next leader wait out the lease.
    await this.leases.expire(LEASE, this.config.scheduler.id).catch(() => undefined);
  }

  /** Takes the lease if it is free or expired, or extends it if held; never throws. */
  async renew(): Promise<void> {
    const started = performance.now();
    // The row expires half a second before the configured lease, so that a standby (which tries
    // every 250 ms) has taken over by the time the lease is up, even if the leader died right
    // after a renewal.
    const lease = this.config.scheduler.leaseSeconds - 0.5;
    try {
      const term = await this.leases.claim(LEASE, this.config.scheduler.id, lease);
      if (term !== this.term) {
        this.logger.log(term === null ? 'not the leader' : `leader, term ${term}`);
      }
      this.term = term;
      this.contact.reached();
      // Counted from before the query: the database may have granted the lease that long ago.
      this.believedUntil = term === null ? 0 : started + lease * 1000 * 0.9;
    } catch (error) {
      if (isDatabaseUnavailable(error)) this.contact.lost();
      this.logger.warn(`lease renewal failed: ${(error as Error).message}`);
    }
  }

  /** Inside a transaction: true only if this process still holds the lease at this term. */
  async fence(manager: EntityManager): Promise<boolean> {
    const term = this.currentTerm;
    if (term === null) return false;
    return this.leases.holds(manager, LEASE, this.config.scheduler.id, term);
  }
}
