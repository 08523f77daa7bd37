import { PipeTransform, Injectable } from '@nestjs/common';
import { KilnException, isId } from '@kiln/common';

/** Rejects a malformed resource id with a 400 before any query runs. */
@Injectable()
export class IdPipe implements PipeTransform<unknown, string> {
  transform(value: unknown): string {
    if (!isId(value)) {
      throw KilnException.badRequest(`"${String(value)}" is not a valid id (24 hex characters)`);
    }
    return value;
  }
}
