import { Injectable } from '@nestjs/common';
import { ProjectLimits, checkQuota } from '@kiln/projects';

/**
 * The live-log followers quota: how many `GET …/log?follow=1` streams each project holds open in
 * this API process. Each holds a Redis subscription and reads Postgres every second, so a project
 * cannot open them without end. Counted per process (a follower lives in one).
 */
@Injectable()
export class FollowerSlots {
  private readonly open = new Map<string, number>();

  constructor(private readonly limits: ProjectLimits) {}

  /** Takes a slot, or refuses with a 429; call the function returned once the stream ends. */
  async take(projectId: string): Promise<() => void> {
    const limit = await this.limits.quota(projectId, 'logFollowers');
    const held = this.open.get(projectId) ?? 0;
    checkQuota('logFollowers', limit, held);
    this.open.set(projectId, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(projectId) ?? 1) - 1;
      if (left > 0) this.open.set(projectId, left);
      else this.open.delete(projectId);
    };
  }
}
