import { KilnException } from '@kiln/common';
import { parseTaskSpecs } from './task-spec';

const limits = { defaultTimeout: 3600, maxTimeout: 3600, maxPayloadBytes: 65536 };
const parse = (tasks: unknown) => parseTaskSpecs({ tasks }, limits);
const failure = (tasks: unknown): KilnException => {
  try {
    parse(tasks);
  } catch (error) {
    return error as KilnException;
  }
  throw new Error('expected a failure');
};

describe('parseTaskSpecs', () => {
  it('fills IronWorker defaults', () => {
    expect(parse([{ code_name: 'hello' }])).toEqual([
      {
        codeName: 'hello',
        payload: '',
        priority: undefined,
        timeout: 3600,
        delay: 0,
        cluster: 'default',
        label: '',
        webhook: null,
      },
    ]);
  });

  it('takes a webhook URL, refusing non-http ones and private address literals', () => {
    expect(parse([{ code_name: 'c', webhook: 'https://hooks.example.com/done' }])[0].webhook).toBe(
      'https://hooks.example.com/done',
    );
    expect(parse([{ code_name: 'c', webhook: '' }])[0].webhook).toBeNull();
    expect(failure([{ code_name: 'c', webhook: 'ftp://x/' }]).message).toBe(
      'tasks[0].webhook must be an http or https URL',
    );
    expect(failure([{ code_name: 'c', webhook: 'http://169.254.169.254/' }]).message).toContain(
      'link-local',
    );
    expect(failure([{ code_name: 'c', webhook: 'not a url' }]).message).toBe(
      'tasks[0].webhook is not a valid URL',
    );
  });

  it("tolerates ironcli's unset values, Go's floats and unknown keys", () => {
    const [spec] = parse([
      {
        code_name: 'c',
        payload: '',
        priority: -3,
        timeout: 0,
        cluster: '',
        name: 'c',
        sync: true,
        oauth: 'x',
        delay: 2.4,
      },
    ]);
    expect(spec).toMatchObject({
      priority: undefined,
      timeout: 3600,
      cluster: 'default',
      delay: 2,
    });
    expect(parse([{ code_name: 'c', timeout: 29.6, label: null }])[0]).toMatchObject({
      timeout: 30,
      label: '',
    });
  });

  it.each([
    [[{}], 400, 'tasks[0].code_name is required'],
    [[{ code_name: 'c', payload: { a: 1 } }], 400, 'tasks[0].payload must be a string'],
    [[{ code_name: 'c', timeout: -1 }], 400, 'tasks[0].timeout must be at least 0'],
    [[{ code_name: 'c', timeout: 3601 }], 400, 'tasks[0].timeout must be at most 3600'],
    [[{ code_name: 'c', timeout: '60' }], 400, 'tasks[0].timeout must be a number'],
    [[{ code_name: 'c', delay: 604801 }], 400, 'tasks[0].delay must be at most 604800'],
    [[{ code_name: 'c', cluster: 'no spaces' }], 400, 'tasks[0].cluster must be'],
    [[{ code_name: 'c' }, 'x'], 400, 'tasks[1] must be an object'],
    [[], 400, 'at least one task'],
    ['nope', 400, 'tasks must be an array'],
  ])('%j → %d %s', (tasks, _status, message) => {
    expect(failure(tasks).message).toContain(message);
  });

  it('refuses more than 100 tasks and payloads over the cap', () => {
    expect(failure(Array.from({ length: 101 }, () => ({ code_name: 'c' }))).message).toContain(
      'at most 100',
    );
    const big = failure([{ code_name: 'c', payload: 'x'.repeat(65537) }]);
    expect(big.code).toBe('payload_too_large');
    expect(big.message).toContain('tasks[0].payload is larger than 65536 bytes');
  });
});
