import { RequestMethod, SetMetadata } from '@nestjs/common';
import { METHOD_METADATA } from '@nestjs/common/constants';
import type { TokenRole } from '@kiln/projects';

const ROLE = 'kiln:role';

/**
 * The role a project token needs for a route, when it is not the rule's: a `GET` needs `read`
 * and every other method `manage` (so a new route is closed to `read` and `queue` tokens until it
 * says otherwise). `@Role('queue')` opens a write to `queue` tokens; `@Role('manage')` closes a
 * read that reveals a secret. The admin token passes every role.
 */
export const Role = (role: TokenRole) => SetMetadata(ROLE, role);

/** The role a project token needs to call `handler` of `controller` (see {@link Role}). */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- Nest hands handlers as Function
export function requiredRole(handler: Function, controller: object): TokenRole {
  const declared = (Reflect.getMetadata(ROLE, handler) ?? Reflect.getMetadata(ROLE, controller)) as
    TokenRole | undefined;
  if (declared) return declared;
  const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
  return method === RequestMethod.GET || method === RequestMethod.HEAD ? 'read' : 'manage';
}
