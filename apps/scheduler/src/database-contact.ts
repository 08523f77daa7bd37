import { Injectable } from '@nestjs/common';
import { performance } from 'node:perf_hooks';

/**
 * How long this scheduler has been in unbroken contact with Postgres. A worker whose heartbeat
 * lapsed while the database was away may be alive and well, with outcomes waiting to be written:
 * its lapse says nothing until the database has been reachable for a whole lapse. So the
 * reconciler re-queues lapsed tasks only once {@link unbrokenSeconds} is at least the lapse.
 * Lease renewals (a third of the lease apart for the leader, 250 ms for a standby) report both
 * contact and loss; the leader's other work reports loss as soon as a query finds Postgres away.
 */
@Injectable()
export class DatabaseContact {
  /** When the current run of unbroken contact began (monotonic ms); null while out of contact. */
  private since: number | null = null;

  reached(): void {
    this.since ??= performance.now();
  }

  lost(): void {
    this.since = null;
  }

  unbrokenSeconds(): number {
    return this.since === null ? 0 : (performance.now() - this.since) / 1000;
  }
}
