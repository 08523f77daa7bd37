import { Writable } from 'node:stream';
import {
  JsonLogger,
  kilnLogger,
  logTransition,
  requestContext,
  requestIdOf,
  TransitionFields,
} from './log';

/** A JsonLogger writing into `lines` (one parsed object per line). */
function capture(level: 'error' | 'warn' | 'log' | 'debug' = 'log') {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { logger: new JsonLogger('worker', level, sink), lines, raw };
}

describe('JsonLogger', () => {
  it('transitions() writes, in one write and in ASCII, the lines event() writes one by one', () => {
    const one = capture();
    const many = capture();
    const list: TransitionFields[] = [
      { task_id: 'a"1\n\t', project_id: 'p"1', code: 'c', attempt: 0, from: null, to: 'queued' },
      { task_id: 'a2', project_id: 'p"1', code: 'c', attempt: 0, from: null, to: 'queued' },
      {
        task_id: 'b\\2',
        project_id: 'p1',
        code: 'ç',
        attempt: 2,
        from: 'running',
        to: 'error',
        worker: 'w1',
      },
      {
        task_id: 'b3',
        project_id: 'p1',
        code: 'ç',
        attempt: 2,
        from: 'running',
        to: 'error',
        worker: null,
      },
    ];
    for (const fields of list) {
      one.logger.event(
        'task.transition',
        { ...fields, request_id: 'r1' },
        `task ${fields.task_id} ${fields.from ?? 'new'} → ${fields.to}`,
      );
    }
    many.logger.transitions(list, 'r1');
    const withoutTime = (lines: Record<string, unknown>[]) =>
      lines.map(({ time, ...rest }) => {
        expect(time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        return rest;
      });
    expect(many.lines).toHaveLength(4);
    expect(withoutTime(many.lines)).toEqual(withoutTime(one.lines));
    expect(many.lines[0]).not.toHaveProperty('worker');
    expect(many.lines[3]).toHaveProperty('worker', null);
    expect(many.lines[2]).toMatchObject({ task_id: 'b\\2', msg: 'task b\\2 running → error' });
    expect(many.raw.slice(0, 2).join('\n')).toMatch(/^[\x20-\x7e\n]*$/);
    // Without a request id, none; below `info`, nothing.
    const bare = capture();
    bare.logger.transitions(list.slice(0, 1), undefined);
    expect(bare.lines[0]).not.toHaveProperty('request_id');
    const quiet = capture('warn');
    quiet.logger.transitions(list, 'r1');
    expect(quiet.lines).toEqual([]);
  });

  it('writes one JSON object a line with level, time, process, pid, context and msg', () => {
    const { logger, lines } = capture();
    logger.log('started', 'TaskDispatcher');
    logger.warn('slow');
    expect(lines).toEqual([
      {
        level: 'info',
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        process: 'worker',
        pid: process.pid,
        context: 'TaskDispatcher',
        msg: 'started',
      },
      expect.objectContaining({ level: 'warn', msg: 'slow' }),
    ]);
    expect(lines[1]).not.toHaveProperty('context');
  });

  it('keeps a stack trace apart from the context, and redacts both the message and the stack', () => {
    const { logger, lines, raw } = capture();
    logger.error(
      'POST http://u:pw-secret-1@127.0.0.1/hook answered 500',
      'Error: Authorization: OAuth kiln_tokensecret2\n    at x (y.ts:1:1)',
      'HTTP',
    );
    logger.error(new Error('bad {"token":"plain-secret-3"}'), 'Tasks');
    expect(lines[0]).toMatchObject({ level: 'error', context: 'HTTP' });
    expect(lines[0].stack).toMatch(/at x \(y\.ts:1:1\)/);
    expect(lines[1]).toMatchObject({ level: 'error', context: 'Tasks' });
    const text = raw.join('\n');
    for (const secret of ['pw-secret-1', 'tokensecret2', 'plain-secret-3']) {
      expect(text).not.toContain(secret);
    }
  });

  it('leaves out levels above KILN_LOG_LEVEL', () => {
    const { logger, lines } = capture('warn');
    logger.log('chatter');
    logger.debug('more chatter');
    logger.warn('kept');
    expect(lines.map((line) => line.msg)).toEqual(['kept']);
  });

  it('writes structured events as fields', () => {
    const { logger, lines } = capture();
    logger.event('task.transition', { task_id: 't1', from: 'queued', to: 'preparing' }, 'moved');
    expect(lines[0]).toMatchObject({
      level: 'info',
      event: 'task.transition',
      task_id: 't1',
      from: 'queued',
      to: 'preparing',
      msg: 'moved',
    });
  });
});

describe('requestIdOf', () => {
  it.each(['abc', 'A-b_c.d:e', 'x'.repeat(128), '0f8fad5b-d9cb-469f-a165-70867728950e'])(
    'keeps the sane id %s',
    (id) => expect(requestIdOf(id)).toBe(id),
  );

  it.each([
    ['empty', ''],
    ['too long', 'x'.repeat(129)],
    ['a newline (forged log lines)', 'abc\n{"level":"info"}'],
    ['a space', 'a b'],
    ['a quote', 'a"b'],
    ['non-ASCII', 'naïve'],
  ])('replaces one with %s', (_what, id) => {
    const made = requestIdOf(id);
    expect(made).not.toBe(id);
    expect(made).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('replaces a missing or repeated header, each time with a new id', () => {
    const a = requestIdOf(undefined);
    const b = requestIdOf(['a', 'b']);
    expect(a).toMatch(/^[0-9a-f-]{36}$/);
    expect(b).toMatch(/^[0-9a-f-]{36}$/);
    expect(a).not.toBe(b);
  });
});

describe('logTransition', () => {
  it('adds the request id of the request that caused it', () => {
    const written: string[] = [];
    const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      written.push(String(chunk));
      return true;
    });
    try {
      kilnLogger('api', 'log', 'pretty');
      requestContext.run({ requestId: 'req-42' }, () =>
        logTransition({
          task_id: 't9',
          project_id: 'p1',
          code: 'hello',
          attempt: 0,
          from: null,
          to: 'queued',
        }),
      );
    } finally {
      out.mockRestore();
    }
    const line = written.join('');
    expect(line).toContain('task t9 new → queued');
    expect(line).toContain('request_id=req-42');
    expect(line).toContain('project_id=p1');
  });
});
