import { call, newProject, registerCode, TestProject } from './support/kiln';

/** Each bad request gets a clear 4xx `{"msg"}` naming the problem, and nothing is written. */
describe('bad input', () => {
  let project: TestProject;
  let tasksPath: string;

  beforeAll(async () => {
    project = await newProject('bad-input');
    await registerCode(project, 'ok');
    tasksPath = `/2/projects/${project.projectId}/tasks`;
  });

  afterEach(async () => {
    const list = await call('GET', tasksPath, { token: project.token });
    expect(list.status).toBe(200);
    expect(list.body.tasks).toEqual([]);
  });

  async function expectRefused(body: string, status: number, msg: RegExp): Promise<void> {
    const res = await call('POST', tasksPath, {
      token: project.token,
      body,
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    expect(res.body.msg).toMatch(msg);
  }

  it('malformed JSON', () => expectRefused('{"tasks": [', 400, /Malformed JSON/));
  it('a body that is not an object', () =>
    expectRefused('[1,2]', 400, /body must be a JSON object/));
  it('tasks of the wrong type', () =>
    expectRefused('{"tasks":{"code_name":"ok"}}', 400, /tasks must be an array/));
  it('a payload of the wrong type', () =>
    expectRefused(
      '{"tasks":[{"code_name":"ok","payload":{"a":1}}]}',
      400,
      /tasks\[0\]\.payload must be a string/,
    ));
  it('a timeout of the wrong type', () =>
    expectRefused(
      '{"tasks":[{"code_name":"ok","timeout":"10"}]}',
      400,
      /timeout must be a number/,
    ));
  it('a missing code_name', () =>
    expectRefused('{"tasks":[{"payload":"{}"}]}', 400, /code_name is required/));
  it('an unknown code', () =>
    expectRefused('{"tasks":[{"code_name":"nope"}]}', 404, /Code "nope" not found/));
  it('one unknown code rejects the whole bulk', () =>
    expectRefused('{"tasks":[{"code_name":"ok"},{"code_name":"nope"}]}', 404, /nope/));
  it('a payload over 64 KB', () =>
    expectRefused(
      JSON.stringify({ tasks: [{ code_name: 'ok', payload: 'x'.repeat(65537) }] }),
      413,
      /payload is larger than 65536 bytes/,
    ));
  it('a timeout below 0', () =>
    expectRefused(
      '{"tasks":[{"code_name":"ok","timeout":-1}]}',
      400,
      /timeout must be at least 0/,
    ));
  it('a timeout above the maximum', () =>
    expectRefused(
      '{"tasks":[{"code_name":"ok","timeout":3601}]}',
      400,
      /timeout must be at most 3600/,
    ));
  it('more than 100 tasks', () =>
    expectRefused(
      JSON.stringify({ tasks: Array.from({ length: 101 }, () => ({ code_name: 'ok' })) }),
      400,
      /at most 100/,
    ));
  it('a NUL character in the payload', () =>
    expectRefused('{"tasks":[{"code_name":"ok","payload":"a\\u0000b"}]}', 400, /NUL/));
  it('a body over the request limit (100 × (2 × the payload cap + 4 KiB) for a task create)', () =>
    expectRefused(
      `{"tasks":[{"code_name":"ok","payload":"${'x'.repeat(14 * 1024 * 1024)}"}]}`,
      413,
      /Request body is too large: this route takes at most 13516800 bytes/,
    ));

  it('a non-hex id', async () => {
    for (const path of [
      `${tasksPath}/not-a-hex-id`,
      `${tasksPath}/zzzzzzzzzzzzzzzzzzzzzzzz/log`,
      `/2/projects/${project.projectId}/codes/123`,
    ]) {
      const res = await call('GET', path, { token: project.token });
      expect(res.status).toBe(400);
      expect(res.body.msg).toMatch(/not a valid id/);
    }
  });

  it('an unknown task or code is a 404', async () => {
    const missing = 'f'.repeat(24);
    for (const path of [
      `${tasksPath}/${missing}`,
      `${tasksPath}/${missing}/log`,
      `/2/projects/${project.projectId}/codes/${missing}`,
    ]) {
      const res = await call('GET', path, { token: project.token });
      expect(res.status).toBe(404);
      expect(res.body.msg).toMatch(/not found/i);
    }
  });

  it('an unknown route is a 404 with msg', async () => {
    const res = await call('GET', `/2/projects/${project.projectId}/nothing-here`, {
      token: project.token,
    });
    expect(res.status).toBe(404);
    expect(typeof res.body.msg).toBe('string');
  });

  it('bad code registrations change nothing', async () => {
    const codesPath = `/2/projects/${project.projectId}/codes`;
    const cases: [unknown, RegExp][] = [
      [{ image: 'kiln-test/busybox:latest' }, /name is required/],
      [{ name: 'x' }, /image is required/],
      [{ name: 'x', image: 'Bad Image' }, /not a valid Docker image reference/],
      [{ name: 'x', image: 'kiln-test/busybox', env_vars: ['A=1'] }, /env_vars must be an object/],
      [{ name: 'x', image: 'kiln-test/busybox', retries: 11 }, /retries must be at most 10/],
    ];
    for (const [json, msg] of cases) {
      const res = await call('POST', codesPath, { token: project.token, json });
      expect(res.status).toBe(400);
      expect(res.body.msg).toMatch(msg);
    }
    const list = await call('GET', codesPath, { token: project.token });
    expect(list.body.codes.map((c: { name: string }) => c.name)).toEqual(['ok']);
  });
});
