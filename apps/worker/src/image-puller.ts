import { Injectable } from '@nestjs/common';
import { DockerEngine } from '@kiln/docker';

/** Makes sure an image is in the local engine, pulling it at most once at a time per reference. */
@Injectable()
export class ImagePuller {
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(private readonly docker: DockerEngine) {}

  async ensure(ref: string): Promise<void> {
    if (await this.docker.hasImage(ref)) return;
    let pull = this.inFlight.get(ref);
    if (!pull) {
      pull = this.docker.pull(ref).finally(() => this.inFlight.delete(ref));
      this.inFlight.set(ref, pull);
    }
    await pull;
  }
}
