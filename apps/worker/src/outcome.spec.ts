import { LogStream } from '@kiln/tasks';
import { WORKER_RESTARTED_NOTE, exitedOutcome, hasExited, verdict } from './outcome';

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
