import { Injectable } from '@nestjs/common';
import { DockerEngine } from '@kiln/docker';

const PRESENT_MS = 60_000;

/** Makes sure an image is in the local engine, pulling it at most once at a time per reference. */
@Injectable()
export class ImagePuller {
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly present = new Map<string, number>();

  constructor(private readonly docker: DockerEngine) {}

  async ensure(ref: string): Promise<void> {
    // An image seen a moment ago is still there: one inspect per image per minute, not per task.
    if ((this.present.get(ref) ?? 0) > Date.now()) return;
    if (await this.docker.hasImage(ref)) {
      this.present.set(ref, Date.now() + PRESENT_MS);
      return;
    }
    let pull = this.inFlight.get(ref);
    if (!pull) {
      pull = this.docker.pull(ref).finally(() => this.inFlight.delete(ref));
      this.inFlight.set(ref, pull);
    }
    await pull;
  }
}
