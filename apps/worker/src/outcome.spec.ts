import { verdict } from './outcome';

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
