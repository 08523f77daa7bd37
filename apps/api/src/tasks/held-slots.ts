import { Inject, Injectable } from '@nestjs/common';
import { KilnException } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { ProjectLimits, QuotaName, checkQuota } from '@kiln/projects';

/** What a client refused for the process's cap is told to wait, in seconds. */
const FULL_RETRY_AFTER_SECONDS = 5;

/**
 * Requests one API process holds open for a long time (a live-log stream, an invoke waiting for
 * its task): at most `max` in all, and for each project at most its `quota`, so one project at
 * its quota leaves the rest of the process to the others. Counted per process, where the
 * requests live; 429 past either.
 */
export class HeldSlots {
  private readonly open = new Map<string, number>();
  private total = 0;
  /** The 429's `msg` when the process is full. */
  private readonly full: string;

  /** `holding` says what the process holds, e.g. `streams 1000 live logs`; `setting` names `max`. */
  constructor(
    private readonly limits: ProjectLimits,
    private readonly quota: QuotaName,
    private readonly max: number,
    holding: string,
    setting: string,
  ) {
    this.full = `This API process already ${holding}, its most (${setting}): retry later`;
  }

  /** Slots held now, all projects together. */
  get held(): number {
    return this.total;
  }

  /** Takes a slot, or refuses with a 429; call the function returned (once is enough) to free it. */
  async take(projectId: string): Promise<() => void> {
    const limit = await this.limits.quota(projectId, this.quota);
    const held = this.open.get(projectId) ?? 0;
    checkQuota(this.quota, limit, held);
    if (this.total >= this.max) {
      throw KilnException.tooManyRequests(this.full, FULL_RETRY_AFTER_SECONDS);
    }
    this.open.set(projectId, held + 1);
    this.total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.open.get(projectId) ?? 1) - 1;
      if (left > 0) this.open.set(projectId, left);
      else this.open.delete(projectId);
    };
  }
}

/**
 * The live-log followers (`GET …/log?follow=1` streams): at most `KILN_API_MAX_FOLLOWERS` in all,
 * and each project's `log_followers` quota. Each holds a socket and a Redis subscription (not a
 * database connection: `FollowWatch`).
 */
@Injectable()
export class FollowerSlots extends HeldSlots {
  constructor(@Inject(KILN_CONFIG) config: KilnConfig, limits: ProjectLimits) {
    const max = config.api.maxFollowers;
    super(limits, 'logFollowers', max, `streams ${max} live logs`, 'KILN_API_MAX_FOLLOWERS');
  }
}

/**
 * The invokes waiting for their task (`POST …/codes/{name}/invoke`): at most
 * `KILN_API_MAX_INVOKES` in all, and each project's `invokes` quota. Like a follower, each holds
 * a socket and a Redis subscription while it waits, never a database connection.
 */
@Injectable()
export class InvokeSlots extends HeldSlots {
  constructor(@Inject(KILN_CONFIG) config: KilnConfig, limits: ProjectLimits) {
    const max = config.api.maxInvokes;
    super(limits, 'invokes', max, `holds ${max} waiting invokes`, 'KILN_API_MAX_INVOKES');
  }
}
