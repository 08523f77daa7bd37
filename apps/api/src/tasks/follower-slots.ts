import { Inject, Injectable } from '@nestjs/common';
import { KilnException } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { ProjectLimits, checkQuota } from '@kiln/projects';

/** What a client refused for the process's cap is told to wait, in seconds. */
const FULL_RETRY_AFTER_SECONDS = 5;

/**
 * The live-log followers one API process holds (`GET …/log?follow=1` streams): at most
 * `KILN_API_MAX_FOLLOWERS` in all, and for each project at most its `log_followers` quota, so
 * one project at its quota leaves the rest of the process to the others. Each follower holds a
 * socket and a Redis subscription (not a database connection: `FollowWatch`). Counted per process,
 * where a follower lives.
 */
@Injectable()
export class FollowerSlots {
  private readonly open = new Map<string, number>();
  private total = 0;

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly limits: ProjectLimits,
  ) {}

  /** Followers held now, all projects together. */
  get held(): number {
    return this.total;
  }

  /** Takes a slot, or refuses with a 429; call the function returned once the stream ends. */
  async take(projectId: string): Promise<() => void> {
    const limit = await this.limits.quota(projectId, 'logFollowers');
    const held = this.open.get(projectId) ?? 0;
    checkQuota('logFollowers', limit, held);
    const max = this.config.api.maxFollowers;
    if (this.total >= max) {
      throw KilnException.tooManyRequests(
        `This API process already streams ${max} live logs, its most (KILN_API_MAX_FOLLOWERS): retry later`,
        FULL_RETRY_AFTER_SECONDS,
      );
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
