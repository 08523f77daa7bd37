import { formatTime } from '@kiln/common';
import type { LogDrain } from '@kiln/webhooks';

/**
 * A log drain: its receiver, its code (null: every code), lines delivered and dropped (past its
 * buffer), failed attempts in a row with the next one and the last error. The signing secret of
 * an HTTPS drain only when just made.
 */
export function logDrainJson(drain: LogDrain, withSecret = false) {
  return {
    id: drain.id,
    url: drain.url,
    code_name: drain.codeName,
    delivered_lines: Number(drain.deliveredLines),
    dropped_lines: Number(drain.droppedLines),
    failures: drain.failures,
    retry_at: drain.retryAt ? formatTime(drain.retryAt) : null,
    last_error: drain.lastError,
    created_at: formatTime(drain.createdAt),
    updated_at: formatTime(drain.updatedAt),
    ...(withSecret && drain.secret !== null ? { secret: drain.secret } : {}),
  };
}
