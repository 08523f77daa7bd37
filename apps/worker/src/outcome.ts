import type { ContainerExit } from '@kiln/docker';
import type { FinalStatus } from '@kiln/tasks';

/** Why Kiln stopped a container itself, if it did. */
export type StopReason = 'timeout' | 'cancelled';

export interface Verdict {
  status: FinalStatus;
  msg: string;
}

/**
 * IronWorker's mapping from how a container ended to the task's final status: exit 0 → complete,
 * OOM or 137 → killed, other exits → error with "exit code N"; a stop Kiln made wins over the exit
 * code it caused. `msg` stays empty on success (ironcli reports any non-empty `msg` as an error).
 */
export function verdict(
  exit: ContainerExit,
  stoppedBy: StopReason | undefined,
  timeoutSeconds: number,
): Verdict {
  if (stoppedBy === 'timeout')
    return { status: 'timeout', msg: `Task timed out after ${timeoutSeconds} s` };
  if (stoppedBy === 'cancelled') return { status: 'cancelled', msg: 'Cancelled' };
  if (exit.oomKilled) return { status: 'killed', msg: 'Killed: out of memory' };
  if (exit.exitCode === 0) return { status: 'complete', msg: '' };
  if (exit.exitCode === 137) return { status: 'killed', msg: 'Killed (exit code 137)' };
  return { status: 'error', msg: `exit code ${exit.exitCode}` };
}
