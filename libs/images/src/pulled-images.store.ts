import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { LessThan, Repository } from 'typeorm';
import { PulledImage } from './pulled-image.entity';

/** Which images a worker pulled itself, and when each was last used (kept across restarts). */
@Injectable()
export class PulledImagesStore {
  constructor(@InjectRepository(PulledImage) private readonly rows: Repository<PulledImage>) {}

  async touch(workerId: string, image: string, at: Date): Promise<void> {
    await this.rows.upsert({ workerId, image, lastUsedAt: at }, ['workerId', 'image']);
  }

  /** Moves the last use of an image this worker pulled forward (images it did not pull are not recorded). */
  async touchIfKnown(workerId: string, image: string, at: Date): Promise<void> {
    await this.rows.update({ workerId, image, lastUsedAt: LessThan(at) }, { lastUsedAt: at });
  }

  async unusedSince(workerId: string, cutoff: Date): Promise<PulledImage[]> {
    return this.rows.find({ where: { workerId, lastUsedAt: LessThan(cutoff) } });
  }

  async forget(workerId: string, image: string): Promise<void> {
    await this.rows.delete({ workerId, image });
  }
}
