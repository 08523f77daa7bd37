import { KilnException } from '@kiln/common';
import { INVOKE_PRIORITY, parseInvokeSpec, parseInvokeWait } from './invoke-spec';
import { TaskLimits } from './task-spec';

const LIMITS: TaskLimits = { defaultTimeout: 3600, maxTimeout: 7200, maxPayloadBytes: 100 };

function msgOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(KilnException);
    return (error as Error).message;
  }
  throw new Error('expected a 400');
}

describe('parseInvokeSpec', () => {
  it("is one task of POST tasks: the path's code, the body's fields, the top priority", () => {
    expect(
      parseInvokeSpec(
        { payload: '{"a":1}', timeout: 60, cluster: 'gpu', label: 'l', code_name: 'other' },
        'hello',
        LIMITS,
      ),
    ).toEqual({
      codeName: 'hello',
      payload: '{"a":1}',
      priority: 2,
      timeout: 60,
      delay: 0,
      cluster: 'gpu',
      label: 'l',
      webhook: null,
    });
    expect(INVOKE_PRIORITY).toBe(2);
    expect(parseInvokeSpec({}, 'hello', LIMITS)).toMatchObject({
      payload: '',
      priority: 2,
      timeout: 3600,
      cluster: 'default',
    });
  });

  it('refuses a priority, whatever its value (null is absent)', () => {
    for (const priority of [0, 1, 2, -3, '2']) {
      expect(msgOf(() => parseInvokeSpec({ priority }, 'hello', LIMITS))).toBe(
        'priority cannot be set on an invoke: it always runs at the top priority, 2',
      );
    }
    expect(parseInvokeSpec({ priority: null }, 'hello', LIMITS).priority).toBe(2);
  });

  it("checks each field as POST tasks does, and the path's code name", () => {
    expect(msgOf(() => parseInvokeSpec({ payload: 'x'.repeat(101) }, 'h', LIMITS))).toMatch(
      /payload/,
    );
    expect(msgOf(() => parseInvokeSpec({ timeout: 7201 }, 'h', LIMITS))).toMatch(/timeout/);
    expect(msgOf(() => parseInvokeSpec({ cluster: 'no spaces' }, 'h', LIMITS))).toMatch(/cluster/);
    expect(msgOf(() => parseInvokeSpec({}, 'x'.repeat(256), LIMITS))).toMatch(/code_name/);
  });
});

describe('parseInvokeWait', () => {
  it('takes whole seconds from 1 to 300, 30 when absent', () => {
    expect(parseInvokeWait({})).toBe(30);
    expect(parseInvokeWait({ wait: '' })).toBe(30);
    expect(parseInvokeWait({ wait: '1' })).toBe(1);
    expect(parseInvokeWait({ wait: '300' })).toBe(300);
  });

  it.each([['0'], ['301'], ['-1'], ['abc'], ['1.5'], ['1e2'], [' 5'], [['5', '6']]])(
    '%j is a 400 naming wait and its range',
    (wait) => {
      expect(msgOf(() => parseInvokeWait({ wait }))).toMatch(/^wait must be .*1 to 300/);
    },
  );
});
