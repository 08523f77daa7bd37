import { INVOKE_WAIT_DEFAULT, LIMITS } from '@kiln/client';
import { JsonObject, KilnException, QueryParams, queryInt } from '@kiln/common';
import { DISPATCH_ORDER } from '@kiln/queue';
import { TaskLimits, TaskSpec, parseTaskSpec } from './task-spec';

/** The priority every invoked task runs at: the most urgent. */
export const INVOKE_PRIORITY = DISPATCH_ORDER[0];

/**
 * The task of `POST …/codes/{name}/invoke`: the fields and checks of one task of `POST tasks`
 * (`parseTaskSpec`: payload, timeout, delay, cluster, label, webhook), the code named by the
 * path (a `code_name` in the body is ignored), at {@link INVOKE_PRIORITY}. A caller waits on
 * the answer, so the priority is not theirs to choose: any `priority` is a 400 rather than
 * silently overridden.
 */
export function parseInvokeSpec(body: JsonObject, codeName: string, limits: TaskLimits): TaskSpec {
  if (body.priority !== undefined && body.priority !== null) {
    throw KilnException.badRequest(
      `priority cannot be set on an invoke: it always runs at the top priority, ${INVOKE_PRIORITY}`,
    );
  }
  const spec = parseTaskSpec({ ...body, code_name: codeName }, limits);
  return { ...spec, priority: INVOKE_PRIORITY };
}

/** `?wait=S`: seconds the caller waits for the task, 1-300, default 30 (a 400 naming the range otherwise). */
export function parseInvokeWait(query: QueryParams): number {
  const [min, max] = LIMITS.invokeWait;
  return queryInt(query, 'wait', INVOKE_WAIT_DEFAULT, min, max);
}
