import { Controller, Get, Inject } from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';

/**
 * IronWorker's `GET /2/stacks`: the names of the operator's stacks (`KILN_STACKS`), a plain JSON
 * array of strings as IronWorker answered. A zip uploaded with `"stack": "<name>"` and no image
 * runs on that stack's image; the first is the default (docs/api.md, "Zip packages").
 */
@Controller('2/stacks')
export class StacksController {
  constructor(@Inject(KILN_CONFIG) private readonly config: KilnConfig) {}

  @Get()
  list(): string[] {
    return this.config.stacks.map((stack) => stack.name);
  }
}
