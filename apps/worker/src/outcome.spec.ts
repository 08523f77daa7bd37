import { LogStream } from '@kiln/tasks';
import { WORKER_RESTARTED_NOTE, exitedOutcome, hasExited, limitHint, verdict } from './outcome';

describe('verdict', () => {
  it.each([
    [{ exitCode: 0, oomKilled: false }, undefined, 'complete', ''],
    [{ exitCode: 3, oomKilled: false }, undefined, 'error', 'exit code 3'],
    [{ exitCode: 137, oomKilled: false }, undefined, 'killed', 'Killed (exit code 137)'],
    [{ exitCode: 137, oomKilled: true }, undefined, 'killed', 'Killed: out of memory'],
    [{ exitCode: 137, oomKilled: false }, 'timeout', 'timeout', 'Task timed out after 5 s'],
    [{ exitCode: 137, oomKilled: false }, 'cancelled', 'cancelled', 'Cancelled'],
  ] as const)('%j stopped by %s → %s', (exit, stoppedBy, status, msg) => {
    expect(verdict(exit, stoppedBy, 5)).toEqual({ status, msg });
  });
});

describe('exitedOutcome', () => {
  const container = {
    exitCode: 0,
    oomKilled: false,
    startedAt: '2026-11-30T10:00:00.000000000Z',
    finishedAt: '2026-11-30T10:00:02.500000000Z',
  };

  it('takes the status from the exit, the duration from Docker, and ends the log with a note', () => {
    const { outcome, chunks } = exitedOutcome(container, 100);
    expect(outcome).toEqual({
      status: 'complete',
      msg: '',
      exitCode: 0,
      durationMs: 2500,
      logSize: 100 + Buffer.byteLength(WORKER_RESTARTED_NOTE),
    });
    expect(chunks).toEqual([
      { seq: 2_147_483_647, stream: LogStream.Kiln, data: WORKER_RESTARTED_NOTE },
    ]);
  });

  it('maps a failing exit as verdict does, and an unreadable time to no duration', () => {
    const { outcome } = exitedOutcome({ ...container, exitCode: 3, finishedAt: 'never' }, 0);
    expect(outcome).toMatchObject({ status: 'error', msg: 'exit code 3', durationMs: null });
  });
});

describe('hasExited', () => {
  it('is true only for a container that was started and stopped', () => {
    expect(hasExited({ Status: 'exited', StartedAt: '2026-11-30T10:00:00Z' })).toBe(true);
    expect(hasExited({ Status: 'exited', StartedAt: '0001-01-01T00:00:00Z' })).toBe(false);
    expect(hasExited({ Status: 'created', StartedAt: '0001-01-01T00:00:00Z' })).toBe(false);
    expect(hasExited({ Status: 'running', StartedAt: '2026-11-30T10:00:00Z' })).toBe(false);
  });
});

describe('limitHint', () => {
  const limits = { taskDirMb: 8, tmpMb: 4, writableRootMb: 0, nofile: 4096 };

  it.each([
    [
      "dd: error writing '/tmp/fill': No space left on device\n",
      ": a write failed, no space left on device (TASK_DIR holds at most 8 MiB, /tmp 4 MiB; files in TASK_DIR and /tmp count in the task's memory)",
    ],
    [
      "dd: can't open '/fill': Read-only file system\n",
      ': a write failed, the root filesystem is read-only (write to TASK_DIR or /tmp)',
    ],
    ["sh: can't open x: Too many open files\n", ': too many open files (at most 4096 per process)'],
    ['something else went wrong\n', ''],
    ['', ''],
  ])('%j → %j', (stderr, hint) => {
    expect(limitHint(stderr, limits)).toBe(hint);
  });

  it('reads only the last lines: an early complaint the task got over is not the reason', () => {
    const stderr = `No space left on device\n${'later output\n'.repeat(100)}`;
    expect(limitHint(stderr, limits)).toBe('');
  });

  it('names the root cap when the root is writable', () => {
    expect(limitHint('No space left on device', { ...limits, writableRootMb: 100 })).toContain(
      'the root filesystem 100 MiB',
    );
  });
});
