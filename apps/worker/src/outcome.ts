import type { ContainerExit } from '@kiln/docker';
import { FinalStatus, LogChunk, LogStream, TaskOutcome } from '@kiln/tasks';

/**
 * Why Kiln stopped a container itself, if it did. `shutdown`: the worker's grace ran out; the
 * task is handed back to the queue, not ended (no verdict is recorded for it).
 */
export type StopReason = 'timeout' | 'cancelled' | 'shutdown';

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
  if (stoppedBy === 'timeout') {
    return { status: 'timeout', msg: `Task timed out after ${timeoutSeconds} s` };
  }
  if (stoppedBy === 'cancelled') return { status: 'cancelled', msg: 'Cancelled' };
  if (exit.oomKilled) return { status: 'killed', msg: 'Killed: out of memory' };
  if (exit.exitCode === 0) return { status: 'complete', msg: '' };
  if (exit.exitCode === 137) return { status: 'killed', msg: 'Killed (exit code 137)' };
  return { status: 'error', msg: `exit code ${exit.exitCode}` };
}

/**
 * A hot task's status (docs/hot.md): a stop Kiln made wins (timeout, cancel), then a container
 * killed for memory, then its answer if it kept the contract; else `error`, saying how it broke.
 */
export function hotVerdict(
  answer: { status: 'complete' | 'error'; msg: string } | undefined,
  broke: string | undefined,
  container: { exited?: ContainerExit },
  stoppedBy: StopReason | undefined,
  timeoutSeconds: number,
): Verdict {
  if (stoppedBy === 'timeout' || stoppedBy === 'cancelled') {
    return verdict({ exitCode: 137, oomKilled: false }, stoppedBy, timeoutSeconds);
  }
  if (container.exited?.oomKilled) return { status: 'killed', msg: 'Killed: out of memory' };
  if (broke === undefined && answer) {
    return {
      status: answer.status,
      msg: answer.status === 'complete' ? answer.msg : answer.msg || 'error',
    };
  }
  const msg = broke ?? 'no answer';
  return {
    status: 'error',
    msg: msg.startsWith('The hot container') ? msg : `The hot container broke the contract: ${msg}`,
  };
}

/** The container limits a failed write can meet; `KilnConfig['container']` fits. */
export interface WriteLimits {
  taskDirMb: number;
  tmpMb: number;
  writableRootMb: number;
  nofile: number;
}

/**
 * Which limit a task that failed most likely met, from the last lines it printed to STDERR (a
 * full tmpfs, the read-only root, the open-file limit: the exit code alone does not say), as a
 * suffix for its `msg`; '' when nothing is recognised.
 */
export function limitHint(stderrTail: string, limits: WriteLimits): string {
  const tail = stderrTail.slice(-LAST_WORDS);
  if (/No space left on device|Disk quota exceeded/i.test(tail)) {
    const root =
      limits.writableRootMb > 0 ? `, the root filesystem ${limits.writableRootMb} MiB` : '';
    return `: a write failed, no space left on device (TASK_DIR holds at most ${limits.taskDirMb} MiB, /tmp ${limits.tmpMb} MiB${root}; files in TASK_DIR and /tmp count in the task's memory)`;
  }
  if (/Read-only file system/i.test(tail)) {
    return ': a write failed, the root filesystem is read-only (write to TASK_DIR or /tmp)';
  }
  if (/Too many open files/i.test(tail)) {
    return `: too many open files (at most ${limits.nofile} per process)`;
  }
  return '';
}

/** How much of the end of STDERR is read for {@link limitHint}: the last few lines. */
const LAST_WORDS = 512;

/** What Docker tells of a container that ended while no worker watched it. */
export interface ExitedContainer {
  exitCode: number;
  oomKilled: boolean;
  startedAt: string;
  finishedAt: string;
}

/** The last line of the log of a task that ended while its worker was down. */
export const WORKER_RESTARTED_NOTE =
  '\n[kiln: the worker restarted while this task ran; output printed after that is missing]\n';
/** The note's seq: after every chunk the task can have printed. */
const LAST_SEQ = 2_147_483_647;

/**
 * The outcome of a task whose container exited while its worker was dead, from Docker's record of
 * the container: its status as {@link verdict} gives it, its duration from Docker's clock, and a
 * note at the end of its log (output printed after the worker died was not read). `storedBytes`
 * is the log already stored.
 */
export function exitedOutcome(
  container: ExitedContainer,
  storedBytes: number,
): { outcome: TaskOutcome; chunks: LogChunk[] } {
  const { status, msg } = verdict(
    { exitCode: container.exitCode, oomKilled: container.oomKilled },
    undefined,
    0,
  );
  const durationMs = Date.parse(container.finishedAt) - Date.parse(container.startedAt);
  return {
    outcome: {
      status,
      msg,
      exitCode: container.exitCode,
      durationMs: Number.isFinite(durationMs) && durationMs >= 0 ? durationMs : null,
      logSize: storedBytes + Buffer.byteLength(WORKER_RESTARTED_NOTE),
    },
    chunks: [{ seq: LAST_SEQ, stream: LogStream.Kiln, data: WORKER_RESTARTED_NOTE }],
  };
}

/** True for a container that was started and has stopped (not one only created). */
export function hasExited(state: { Status: string; StartedAt: string }): boolean {
  return state.Status === 'exited' && !state.StartedAt.startsWith('0001-');
}
