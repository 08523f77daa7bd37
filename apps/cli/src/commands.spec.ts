import fc from 'fast-check';
import { InvokeResult, KilnError, KilnTimeoutError } from '@kiln/client';
import { COMMANDS, Context, INT_FLAGS, INVOKE_WAIT_PASSED, UsageError, Values } from './commands';
import { colours } from './format';

/** What the fake client was asked, instead of a request: the call's arguments. */
class Reached extends Error {
  constructor(readonly args: unknown[]) {
    super('reached the client');
  }
}

/** A client whose every method throws `Reached` with its arguments: nothing leaves the process. */
function fakeKiln(): never {
  const handler: ProxyHandler<() => void> = {
    get: () => new Proxy(() => undefined, handler),
    apply: (_target, _this, args: unknown[]) => {
      throw new Reached(args);
    },
  };
  return new Proxy(() => undefined, handler) as never;
}

function context(values: Values, positionals: string[]): Context {
  const plain = colours(false, true);
  return {
    values,
    positionals,
    out: () => undefined,
    err: () => undefined,
    c: plain,
    cErr: plain,
    stderrTty: false,
    kiln: fakeKiln,
  };
}

/** How to call each command that takes an integer flag, short of that flag. */
const CALLS: Record<string, { positionals: string[]; values?: Values }> = {
  register: { positionals: ['kiln-test/busybox:latest'] },
  queue: { positionals: ['hello'] },
  invoke: { positionals: ['hello'] },
  tasks: { positionals: [] },
  retry: { positionals: ['6740c3b2e4b0a1b2c3d4e5f6'] },
  schedule: { positionals: ['hello'], values: { cron: '* * * * *' } },
  webhooks: { positionals: ['deliveries', '6740c3b2e4b0a1b2c3d4e5f6'] },
};

/** Every (command, integer flag) pair the CLI has. */
const FLAG_CASES = COMMANDS.flatMap((command) =>
  Object.keys(command.options)
    // `queue --wait` is a boolean flag; `invoke --wait` the integer one.
    .filter((flag) => flag in INT_FLAGS && command.options[flag].type === 'string')
    .map((flag) => ({ command, flag })),
);

const oddFlagValue = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '-0',
    '1e21',
    '9007199254740991',
    '9007199254740992',
    '-9007199254740991',
    '99999999999999999999',
    '2147483648',
    '0x10',
    '1.5',
    'NaN',
    'Infinity',
    '\u0000',
    ' 7 ',
  ),
  fc.integer().map(String),
  fc.double().map(String),
  fc.maxSafeInteger().map(String),
  fc.string({ maxLength: 12 }),
);

/** Whether `text` names a whole number from `min` to `max`, as the CLI should take it. */
function accepted(text: string, [min, max]: readonly [number, number]): boolean {
  const trimmed = text.trim();
  if (!/^-?\d+$/.test(trimmed)) return false;
  const value = Number(trimmed);
  return Number.isSafeInteger(value) && value >= min && value <= max;
}

describe('integer flags of the kiln CLI', () => {
  it('cover every command that takes one', () => {
    expect(Object.keys(CALLS).sort()).toEqual(
      [...new Set(FLAG_CASES.map(({ command }) => command.name))].sort(),
    );
  });

  it('reach the client as a whole number in range, or are a usage error naming the range', async () => {
    const runs = Number(process.env.KILN_FUZZ_RUNS ?? 100);
    const seed = Number(process.env.KILN_FUZZ_SEED ?? 20261130);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...FLAG_CASES),
        oddFlagValue,
        async ({ command, flag }, text) => {
          const call = CALLS[command.name];
          const values: Values = { ...call.values, [flag]: text };
          if (flag === 'run-every') delete values.cron;
          const range = INT_FLAGS[flag];
          const outcome = await command.run(context(values, call.positionals)).then(
            (code) => ({ code }),
            (error: unknown) => error,
          );
          if (accepted(text, range)) {
            expect(outcome).toBeInstanceOf(Reached);
            const n = Number(text.trim());
            const args = (outcome as Reached).args;
            // --count is how many tasks, --limit how many rows to print; the others are sent.
            if (flag === 'count') {
              expect(args[0]).toHaveLength(n);
            } else if (flag !== 'limit') {
              expect(JSON.stringify(args)).toMatch(new RegExp(`:${n}[,}]`));
            }
          } else {
            expect(outcome).toBeInstanceOf(UsageError);
            expect((outcome as UsageError).message).toBe(
              `--${flag} wants a whole number from ${range[0]} to ${range[1]}, got "${text}"`,
            );
          }
        },
      ),
      { numRuns: runs * 5, seed },
    );
  }, 120_000);
});

describe('kiln register --hot', () => {
  const register = COMMANDS.find((command) => command.name === 'register')!;
  const hotOf = async (values: Values) => {
    const outcome = await register
      .run(context(values, ['kiln-test/node-hot:latest']))
      .catch((error: unknown) => error);
    expect(outcome).toBeInstanceOf(Reached);
    return ((outcome as Reached).args[0] as { hot?: unknown }).hot;
  };

  it('is cold without a hot flag, takes the defaults with --hot, and each setting turns it on', async () => {
    expect(await hotOf({})).toBeUndefined();
    expect(await hotOf({ hot: true })).toEqual({});
    expect(await hotOf({ 'hot-max-containers': '4', 'hot-idle-timeout': '5' })).toEqual({
      idle_timeout: 5,
      max_containers: 4,
    });
  });
});

describe('kiln tokens', () => {
  const tokens = COMMANDS.find((command) => command.name === 'tokens')!;
  const run = (positionals: string[], values: Values = {}) =>
    tokens.run(context(values, positionals)).then(
      (code) => ({ code }),
      (error: unknown) => error,
    );

  it('create sends the name, role and expiry it was given', async () => {
    const outcome = await run(['create'], {
      name: 'ci',
      role: 'queue',
      'expires-at': '2027-01-01T00:00:00Z',
    });
    expect(outcome).toBeInstanceOf(Reached);
    expect((outcome as Reached).args).toEqual([
      { name: 'ci', role: 'queue', expiresAt: '2027-01-01T00:00:00Z' },
    ]);
  });

  it('revoke sends the id; list sends nothing', async () => {
    expect(((await run(['revoke', '6740c3b2e4b0a1b2c3d4e5f6'])) as Reached).args).toEqual([
      '6740c3b2e4b0a1b2c3d4e5f6',
    ]);
    expect(((await run(['list'])) as Reached).args).toEqual([]);
  });

  it.each([
    [['create'], { role: 'admin' }, '--role wants one of read, queue, manage, got "admin"'],
    [['revoke'], {}, 'tokens revoke needs ID'],
    [['list', 'extra'], {}, 'unexpected extra'],
    [['drop'], {}, 'tokens wants list, create or revoke, not "drop"'],
    [[], {}, 'tokens wants list, create or revoke'],
  ])('%j %j is a usage error', async (positionals, values, message) => {
    const outcome = await run(positionals, values);
    expect(outcome).toBeInstanceOf(UsageError);
    expect((outcome as UsageError).message).toBe(message);
  });
});

describe('kiln cancel and retry', () => {
  const run = (name: string, positionals: string[], values: Values = {}) =>
    COMMANDS.find((command) => command.name === name)!
      .run(context(values, positionals))
      .then(
        (code) => ({ code }),
        (error: unknown) => error,
      );
  const A = '6740c3b2e4b0a1b2c3d4e5f6';
  const B = '6740c3b2e4b0a1b2c3d4e5f7';

  it('send one id to the single route, several ids or the filter flags to the bulk one', async () => {
    expect(((await run('cancel', [A])) as Reached).args).toEqual([A]);
    expect(((await run('cancel', [A, B])) as Reached).args).toEqual([{ ids: [A, B] }]);
    expect(
      ((await run('cancel', [], { code: 'resize', status: 'queued,running' })) as Reached).args,
    ).toEqual([
      { filter: { codeName: 'resize', label: undefined, status: ['queued', 'running'] } },
    ]);
    expect(((await run('retry', [A], { delay: '5' })) as Reached).args).toEqual([A, { delay: 5 }]);
    expect(((await run('retry', [], { label: 'x' })) as Reached).args).toEqual([
      { filter: { codeName: undefined, label: 'x', status: [] } },
      { delay: undefined },
    ]);
  });

  it.each([
    ['cancel', [], {}, 'ID is missing'],
    ['retry', [], {}, 'ID is missing'],
    ['cancel', [A], { code: 'x' }, 'give task ids or --code/--status/--label, not both'],
  ])('%s %j %j is a usage error', async (name, positionals, values, message) => {
    const outcome = await run(name, positionals, values);
    expect(outcome).toBeInstanceOf(UsageError);
    expect((outcome as UsageError).message).toBe(message);
  });
});

describe('kiln invoke', () => {
  const invoke = COMMANDS.find((command) => command.name === 'invoke')!;
  const ID = '6740c3b2e4b0a1b2c3d4e5f6';

  /** Runs `kiln invoke hello` against a client whose `codes.invoke` answers `answer`. */
  async function run(answer: () => Promise<InvokeResult>, values: Values = {}) {
    const printed = { out: '', err: '' };
    const asked: unknown[][] = [];
    const plain = colours(false, true);
    const code = await invoke.run({
      values,
      positionals: ['hello'],
      out: (text) => (printed.out += text),
      err: (text) => (printed.err += text),
      c: plain,
      cErr: plain,
      stderrTty: false,
      kiln: () =>
        ({
          codes: {
            invoke: (...args: unknown[]) => {
              asked.push(args);
              return answer();
            },
          },
        }) as never,
    });
    return { code, ...printed, asked };
  }

  const result = (over: Partial<InvokeResult> = {}): InvokeResult => ({
    id: ID,
    status: 'complete',
    msg: '',
    duration: 12,
    output: 'hi\n',
    truncated: false,
    ...over,
  });

  it('prints the output and exits 0 on complete, sending the payload and flags', async () => {
    const done = await run(async () => result(), {
      payload: '{"a":1}',
      wait: '60',
      timeout: '10',
      label: 'l',
    });
    expect(done).toMatchObject({ code: 0, out: 'hi\n', err: '' });
    expect(done.asked).toEqual([
      ['hello', '{"a":1}', { timeout: 10, cluster: undefined, label: 'l', wait: 60 }],
    ]);
  });

  it.each([
    ['error', 'exit code 3', 1],
    ['timeout', 'Timed out', 124],
    ['killed', 'Out of memory', 137],
    ['cancelled', 'Cancelled', 130],
  ] as const)('%s: the output, why on stderr, exit %d', async (status, msg, exit) => {
    const failed = await run(async () => result({ status, msg }));
    expect(failed).toMatchObject({
      code: exit,
      out: 'hi\n',
      err: `task ${ID} ${status}: ${msg}\n`,
    });
  });

  it('says so on stderr when the output was truncated', async () => {
    const long = await run(async () => result({ truncated: true }));
    expect(long.err).toBe(`(output truncated: kiln log ${ID} prints it all)\n`);
  });

  it(`a passed wait exits ${INVOKE_WAIT_PASSED}, naming the task; --json prints {id, msg}`, async () => {
    const late = () =>
      Promise.reject(new KilnTimeoutError(`Task ${ID} did not end within 1 s`, ID, 504));
    expect(await run(late)).toMatchObject({
      code: INVOKE_WAIT_PASSED,
      out: '',
      err: `Task ${ID} did not end within 1 s\n`,
    });
    const json = await run(late, { json: true });
    expect(JSON.parse(json.out)).toEqual({ id: ID, msg: `Task ${ID} did not end within 1 s` });
  });

  it('any other failure is thrown for main to print', async () => {
    const error = new KilnError(404, 'Code "hello" not found');
    await expect(run(() => Promise.reject(error))).rejects.toBe(error);
  });
});
