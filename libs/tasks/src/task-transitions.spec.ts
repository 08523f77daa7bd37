import { TASK_STATUSES, TaskStatus, isFinal } from './task-status';
import { TaskActor, allowedFrom, mayChange, sqlFrom } from './task-transitions';

const ACTORS: TaskActor[] = ['api', 'worker', 'reconciler'];

/** The transitions Kiln allows, written out pair by pair: the table must give exactly these. */
const EXPECTED = new Set([
  'queued→preparing by worker',
  'preparing→running by worker',
  ...['preparing', 'running'].flatMap((from) =>
    ['complete', 'error', 'killed', 'timeout'].map((to) => `${from}→${to} by worker`),
  ),
  'preparing→queued by worker',
  'running→queued by worker',
  'queued→cancelled by api',
  'preparing→cancelled by api',
  'running→cancelled by api',
  'preparing→queued by reconciler',
  'running→queued by reconciler',
  'preparing→error by reconciler',
  'running→error by reconciler',
]);

describe('task transitions', () => {
  it.each(TASK_STATUSES.flatMap((from) => TASK_STATUSES.map((to) => [from, to] as const)))(
    '%s → %s is allowed exactly as listed',
    (from: TaskStatus, to: TaskStatus) => {
      for (const by of ACTORS) {
        expect(mayChange(from, to, by)).toBe(EXPECTED.has(`${from}→${to} by ${by}`));
      }
    },
  );

  it('never leaves a final status, and nobody but the API cancels', () => {
    for (const from of TASK_STATUSES.filter(isFinal)) {
      for (const to of TASK_STATUSES) {
        for (const by of ACTORS) expect(mayChange(from, to, by)).toBe(false);
      }
    }
    expect(allowedFrom('cancelled', 'worker')).toEqual([]);
    expect(allowedFrom('cancelled', 'reconciler')).toEqual([]);
  });

  it('a worker records every final status it may from the same statuses (one finish statement)', () => {
    for (const status of ['complete', 'error', 'killed', 'timeout'] as const) {
      expect(allowedFrom(status, 'worker')).toEqual(allowedFrom('complete', 'worker'));
    }
  });

  it('builds the WHERE clause of each statement from the table', () => {
    expect(sqlFrom('preparing', 'worker')).toBe(`status IN ('queued')`);
    expect(sqlFrom('queued', 'reconciler', 't.status')).toBe(
      `t.status IN ('preparing', 'running')`,
    );
    expect(sqlFrom('cancelled', 'api')).toBe(`status IN ('queued', 'preparing', 'running')`);
    expect(() => sqlFrom('cancelled', 'worker')).toThrow('no transition to cancelled by worker');
  });
});
