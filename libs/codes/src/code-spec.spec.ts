import { isImageReference, parseCodeSpec } from './code-spec';

describe('parseCodeSpec', () => {
  it('accepts exactly what `iron register` sends', () => {
    const spec = parseCodeSpec({
      name: 'user/hello',
      runtime: '',
      file_name: '',
      stack: '',
      image: 'user/hello:0.0.1',
      command: '',
      env_vars: null,
      default_priority: -1000,
    });
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
    });
  });

  it('keeps settings and turns an object config into JSON', () => {
    const spec = parseCodeSpec({
      name: 'n',
      image: '127.0.0.1:5000/team/job@sha256:' + 'a'.repeat(64),
      config: { key: 'v' },
      env_vars: { A: '1' },
      max_concurrency: 3,
      retries: 2,
      retries_delay: 10,
      default_priority: 2,
    });
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
  ])('%j is refused: %s', (data, message) => {
    expect(() => parseCodeSpec(data)).toThrow(message);
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
