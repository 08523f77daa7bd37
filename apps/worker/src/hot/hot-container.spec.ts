import { HotContainerBroke, parseAnswer } from './hot-container';
import { hotVerdict } from '../outcome';

describe('parseAnswer', () => {
  it('takes a 200 with {"status","msg"}, msg optional and cut to 1,000 characters', () => {
    expect(parseAnswer(200, '{"status":"complete"}')).toEqual({ status: 'complete', msg: '' });
    expect(parseAnswer(200, '{"status":"error","msg":"no"}')).toEqual({
      status: 'error',
      msg: 'no',
    });
    expect(
      parseAnswer(200, JSON.stringify({ status: 'error', msg: 'x'.repeat(5000) })).msg,
    ).toHaveLength(1000);
    expect(parseAnswer(200, '{"status":"complete","msg":7}')).toEqual({
      status: 'complete',
      msg: '',
    });
  });

  it.each([
    [500, '{"status":"complete"}', 'it answered HTTP 500, not 200'],
    [200, 'ok', 'its answer is not JSON: "ok"'],
    [200, '{"status":"done"}', 'its answer\'s status is "done", not "complete" or "error"'],
    [200, 'null', "its answer's status is undefined"],
    [200, '[]', "its answer's status is undefined"],
  ])('%i %s breaks the contract', (status, body, msg) => {
    expect(() => parseAnswer(status, body)).toThrow(HotContainerBroke);
    expect(() => parseAnswer(status, body)).toThrow(msg);
  });
});

describe('hotVerdict', () => {
  const answer = { status: 'complete' as const, msg: '' };
  it("lets Kiln's own stop win over the answer", () => {
    expect(hotVerdict(answer, undefined, {}, 'timeout', 5)).toEqual({
      status: 'timeout',
      msg: 'Task timed out after 5 s',
    });
    expect(hotVerdict(undefined, 'gone', {}, 'cancelled', 5)).toEqual({
      status: 'cancelled',
      msg: 'Cancelled',
    });
  });

  it('reports a container the kernel killed for memory as `killed`', () => {
    const exited = { exitCode: 137, oomKilled: true };
    expect(hotVerdict(undefined, 'x', { exited }, undefined, 5)).toEqual({
      status: 'killed',
      msg: 'Killed: out of memory',
    });
  });

  it('takes the answer when the contract was kept, and says how it was broken otherwise', () => {
    expect(hotVerdict({ status: 'error', msg: 'bad input' }, undefined, {}, undefined, 5)).toEqual({
      status: 'error',
      msg: 'bad input',
    });
    expect(hotVerdict({ status: 'error', msg: '' }, undefined, {}, undefined, 5).msg).toBe('error');
    expect(hotVerdict(answer, 'no fences', {}, undefined, 5)).toEqual({
      status: 'error',
      msg: 'The hot container broke the contract: no fences',
    });
    expect(
      hotVerdict(
        undefined,
        'The hot container exited with code 3 during the task',
        {},
        undefined,
        5,
      ),
    ).toEqual({ status: 'error', msg: 'The hot container exited with code 3 during the task' });
  });
});
