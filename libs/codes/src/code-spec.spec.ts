import {
  HOT_DEFAULTS,
  isImageReference,
  parseCodeSpec,
  parseHot,
  parseZipCodeSpec,
} from './code-spec';

const limits = { cpusMax: 2, memoryMbMax: 1024, hotCodeMaxContainers: 4 };

describe('parseCodeSpec', () => {
  it('accepts exactly what `iron register` sends', () => {
    const spec = parseCodeSpec(
      {
        name: 'user/hello',
        runtime: '',
        file_name: '',
        stack: '',
        image: 'user/hello:0.0.1',
        command: '',
        env_vars: null,
        default_priority: -1000,
      },
      limits,
    );
    expect(spec).toEqual({
      name: 'user/hello',
      image: 'user/hello:0.0.1',
      command: '',
      config: '',
      envVars: {},
      maxConcurrency: null,
      retries: 0,
      retriesDelay: 0,
      defaultPriority: 0,
      cpus: null,
      memoryMb: null,
      hot: null,
      zipDigest: null,
    });
  });

  it('keeps settings and turns an object config into JSON', () => {
    const spec = parseCodeSpec(
      {
        name: 'n',
        image: '127.0.0.1:5000/team/job@sha256:' + 'a'.repeat(64),
        config: { key: 'v' },
        env_vars: { A: '1' },
        max_concurrency: 3,
        retries: 2,
        retries_delay: 10,
        default_priority: 2,
      },
      limits,
    );
    expect(spec).toMatchObject({
      config: '{"key":"v"}',
      envVars: { A: '1' },
      maxConcurrency: 3,
      retries: 2,
      defaultPriority: 2,
    });
  });

  it.each([
    [{ image: 'x' }, 'name is required'],
    [{ name: 'n' }, 'image is required'],
    [{ name: 'n', image: '../etc/passwd' }, 'not a valid Docker image reference'],
    [{ name: 'n', image: 'x', retries: 11 }, 'retries must be at most 10'],
    [{ name: 'n', image: 'x', env_vars: { A: 1 } }, 'env_vars.A must be a string'],
    [{ name: 'n', image: 'x', env_vars: 'A=1' }, 'env_vars must be an object of strings'],
    [
      { name: 'n', image: 'x', max_concurrency: 1e21 },
      'max_concurrency must be at most 100000 (an integer from -1 to 100000)',
    ],
    [
      { name: 'n', image: 'x', max_concurrency: -2 },
      'max_concurrency must be at least -1 (an integer from -1 to 100000)',
    ],
    [{ name: 'n', image: 'x', env_vars: { A: 'a\u0000' } }, 'env_vars.A must not contain NUL'],
    [
      { name: 'n', image: 'x', cpus: 2.5 },
      "cpus must be at most 2 (a number of CPUs from 0.01 to 2, this server's maximum)",
    ],
    [{ name: 'n', image: 'x', cpus: 0 }, 'cpus must be at least 0.01'],
    [{ name: 'n', image: 'x', cpus: -1 }, 'cpus must be at least 0.01'],
    [{ name: 'n', image: 'x', cpus: '1' }, 'cpus must be a number of CPUs from 0.01 to 2'],
    [{ name: 'n', image: 'x', cpus: 'lots' }, 'cpus must be a number of CPUs'],
    [{ name: 'n', image: 'x', cpus: true }, 'cpus must be a number of CPUs'],
    [
      { name: 'n', image: 'x', memory: 1025 },
      "memory must be at most 1024 (a whole number of MB from 6 to 1024, this server's maximum)",
    ],
    [{ name: 'n', image: 'x', memory: 0 }, 'memory must be at least 6'],
    [{ name: 'n', image: 'x', memory: -512 }, 'memory must be at least 6'],
    [{ name: 'n', image: 'x', memory: 256.5 }, 'memory must be a whole number of MB'],
    [{ name: 'n', image: 'x', memory: '512M' }, 'memory must be a whole number of MB'],
  ])('%j is refused: %s', (data, message) => {
    expect(() => parseCodeSpec(data, limits)).toThrow(message);
  });

  it('takes cpus and memory up to the operator maximum; null means the default', () => {
    const spec = parseCodeSpec({ name: 'n', image: 'x', cpus: 0.5, memory: 1024 }, limits);
    expect(spec).toMatchObject({ cpus: 0.5, memoryMb: 1024 });
    expect(parseCodeSpec({ name: 'n', image: 'x', cpus: 2, memory: 6 }, limits)).toMatchObject({
      cpus: 2,
      memoryMb: 6,
    });
    expect(
      parseCodeSpec({ name: 'n', image: 'x', cpus: null, memory: null }, limits),
    ).toMatchObject({ cpus: null, memoryMb: null });
  });
});

describe('parseHot', () => {
  it('is cold for absent, null and false', () => {
    for (const value of [undefined, null, false]) expect(parseHot(value, 4)).toBeNull();
    expect(parseCodeSpec({ name: 'n', image: 'x' }, limits).hot).toBeNull();
  });

  it('takes each default a field does not give', () => {
    expect(parseHot({}, 4)).toEqual(HOT_DEFAULTS);
    expect(parseHot({ idle_timeout: 5 }, 4)).toEqual({ ...HOT_DEFAULTS, idleTimeout: 5 });
    expect(
      parseCodeSpec(
        { name: 'n', image: 'x', hot: { idle_timeout: 60, max_tasks: 1, max_containers: 4 } },
        limits,
      ).hot,
    ).toEqual({ idleTimeout: 60, maxTasks: 1, maxContainers: 4 });
  });

  it.each([
    [true, 'hot must be an object'],
    ['yes', 'hot must be an object'],
    [[1], 'hot must be an object'],
    [{ idle: 3 }, 'hot.idle is not a setting'],
    [{ idle_timeout: 0 }, 'hot.idle_timeout must be a whole number from 1 to 3600'],
    [{ idle_timeout: 3601 }, 'from 1 to 3600'],
    [{ max_tasks: 1.5 }, 'hot.max_tasks must be a whole number from 1 to 1000000'],
    [{ max_tasks: '10' }, 'hot.max_tasks must be'],
    [{ max_containers: 5 }, 'hot.max_containers must be a whole number from 1 to 4'],
  ])('refuses %j', (value, msg) => {
    expect(() => parseHot(value, 4)).toThrow(msg);
  });
});

describe('isImageReference', () => {
  it.each(['busybox', 'kiln-test/busybox:latest', 'localhost:5000/a/b:1.0', 'a.b.c/d_e/f-g:tag_1'])(
    '%s is valid',
    (ref) => {
      expect(isImageReference(ref)).toBe(true);
    },
  );
  it.each(['', 'UPPER/case', 'a//b', 'a/../b', 'a:tag:tag', 'a b'])('%s is not', (ref) => {
    expect(isImageReference(ref)).toBe(false);
  });
});

describe('parseZipCodeSpec', () => {
  const stacks = [
    { name: 'node', image: 'kiln-test/node:1' },
    { name: 'sh', image: 'kiln-test/busybox:latest' },
  ];

  it('takes the image named, else the stack named, else the first stack', () => {
    const parse = (data: Record<string, unknown>) =>
      parseZipCodeSpec({ name: 'z', command: 'sh run.sh', ...data }, limits, stacks).image;
    expect(parse({ image: 'mine/img:2', stack: 'sh' })).toBe('mine/img:2');
    expect(parse({ stack: 'sh' })).toBe('kiln-test/busybox:latest');
    expect(parse({ stack: '' })).toBe('kiln-test/node:1');
    expect(() => parse({ stack: 'cobol' })).toThrow(
      /no stack "cobol" on this server \(stacks: node, sh\)/,
    );
    expect(() => parseZipCodeSpec({ name: 'z', command: 'x' }, limits, [])).toThrow(
      /a zip package needs "image" \(or a "stack"\); this server has no stacks/,
    );
  });

  it("makes IronWorker's runtime + file_name the command; needs one of them", () => {
    const legacy = {
      name: 'z',
      runtime: 'sh',
      file_name: '__runner__.sh',
      content_type: 'text/plain',
    };
    expect(parseZipCodeSpec(legacy, limits, stacks).command).toBe('sh __runner__.sh');
    expect(parseZipCodeSpec({ name: 'z', file_name: 'go.sh' }, limits, stacks).command).toBe(
      'sh go.sh',
    );
    expect(parseZipCodeSpec({ ...legacy, command: 'node a.js' }, limits, stacks).command).toBe(
      'node a.js',
    );
    expect(() => parseZipCodeSpec({ name: 'z' }, limits, stacks)).toThrow(
      /needs "command" \(or "file_name"\)/,
    );
  });

  it('never takes a zip digest from the registration', () => {
    const spec = parseZipCodeSpec(
      { name: 'z', command: 'x', zip_digest: 'sha256:' + 'b'.repeat(64) },
      limits,
      stacks,
    );
    expect(spec.zipDigest).toBeNull();
  });
});
