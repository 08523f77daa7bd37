import { call, newProject, TestProject } from './support/kiln';

describe('codes', () => {
  let project: TestProject;
  let path: string;

  beforeAll(async () => {
    project = await newProject('codes');
    path = `/2/projects/${project.projectId}/codes`;
  });

  it("registers with IronWorker's multipart `data` form, exactly as `iron register` sends it", async () => {
    const form = new FormData();
    form.append(
      'data',
      '{"name":"user/hello","runtime":"","file_name":"","stack":"","image":"kiln-test/busybox:latest","command":"","env_vars":null,"default_priority":-1000}\n',
    );
    const res = await call('POST', path, { token: project.token, body: form });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{24}$/),
      msg: 'Upload successful.',
    });
    const code = await call('GET', `${path}/${res.body.id}`, { token: project.token });
    expect(code.body).toMatchObject({
      id: res.body.id,
      project_id: project.projectId,
      name: 'user/hello',
      rev: 1,
      image: 'kiln-test/busybox:latest',
      env_vars: {},
      priority: 0,
    });
    expect(code.body.latest_history_id).toMatch(/^[0-9a-f]{24}$/);
  });

  it('registers with plain JSON; the same name makes a new revision of the same code', async () => {
    const first = await call('POST', path, {
      token: project.token,
      json: {
        name: 'job',
        image: 'kiln-test/busybox:latest',
        command: 'sh /kiln/run.sh',
        max_concurrency: 2,
        retries: 3,
      },
    });
    const second = await call('POST', path, {
      token: project.token,
      json: { name: 'job', image: 'kiln-test/busybox:alt', config: { a: 1 } },
    });
    expect(second.body.id).toBe(first.body.id);
    const code = await call('GET', `${path}/${first.body.id}`, { token: project.token });
    expect(code.body).toMatchObject({
      rev: 2,
      image: 'kiln-test/busybox:alt',
      config: '{"a":1}',
      retries: 0,
    });
  });

  it('lists codes with paging', async () => {
    const all = await call('GET', path, { token: project.token });
    expect(all.status).toBe(200);
    expect(all.body.codes.map((c: { name: string }) => c.name).sort()).toEqual([
      'job',
      'user/hello',
    ]);
    const page = await call('GET', `${path}?per_page=1&page=1`, { token: project.token });
    expect(page.body.codes).toHaveLength(1);
    const bad = await call('GET', `${path}?per_page=101`, { token: project.token });
    expect(bad.status).toBe(400);
    expect(bad.body.msg).toMatch(/per_page/);
  });

  it('refuses a multipart `data` that is not JSON, and a legacy upload whose zip is not one', async () => {
    const broken = new FormData();
    broken.append('data', '{"name":');
    const res = await call('POST', path, { token: project.token, body: broken });
    expect(res.status).toBe(400);
    expect(res.body.msg).toMatch(/data is not valid JSON/);
    const zip = new FormData();
    zip.append(
      'data',
      JSON.stringify({ name: 'legacy', runtime: 'sh', file_name: '__runner__.sh' }),
    );
    zip.append('file', new Blob([Buffer.from('PK\u0003\u0004 not really a zip')]), 'code.zip');
    const legacy = await call('POST', path, { token: project.token, body: zip });
    expect(legacy.status).toBe(400);
    expect(legacy.body.msg).toMatch(/not a zip/);
    // Nothing was stored: no code of that name.
    const listed = await call('GET', path, { token: project.token });
    expect(listed.body.codes.map((c: { name: string }) => c.name)).not.toContain('legacy');
  });
});
