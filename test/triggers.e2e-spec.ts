import { createHmac } from 'node:crypto';
import { call, e2e, newProject, registerCode, TestProject } from './support/kiln';

/** Per-code trigger URLs: a revocable secret of their own, optional HMAC of the body. */
describe('incoming triggers', () => {
  let project: TestProject;
  let codeId: string;
  let otherCodeId: string;

  beforeAll(async () => {
    project = await newProject('triggers');
    codeId = await registerCode(project, 'deploy');
    otherCodeId = await registerCode(project, 'other');
  });

  const api = (method: string, path: string, json?: unknown) =>
    call(method, `/2/projects/${project.projectId}${path}`, { token: project.token, json });

  async function createTrigger(body: Record<string, unknown> = {}, code = codeId) {
    const res = await api('POST', `/codes/${code}/triggers`, body);
    expect(res.status).toBe(200);
    return res.body;
  }

  /** Posts to a trigger URL without any project token. */
  async function fire(url: string, body: string | Buffer, headers: Record<string, string> = {}) {
    const res = await fetch(url.replace(/^http:\/\/[^/]+/, e2e().url), {
      method: 'POST',
      headers,
      body,
    });
    return { status: res.status, body: (await res.json()) as any };
  }

  async function tasksOf(codeName: string): Promise<any[]> {
    const res = await api('GET', `/tasks?code_name=${codeName}&per_page=100`);
    return res.body.tasks;
  }

  it('makes a trigger whose URL queues its code with the raw body as payload; the secret is shown once', async () => {
    const trigger = await createTrigger();
    expect(trigger).toMatchObject({ code_id: codeId, code_name: 'deploy', hmac_header: null });
    expect(trigger.secret).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(trigger.url).toBe(
      `${e2e().url}/2/projects/${project.projectId}/triggers/${trigger.id}?secret=${trigger.secret}`,
    );
    const listed = await api('GET', `/codes/${codeId}/triggers`);
    expect(listed.body.triggers).toHaveLength(1);
    expect(listed.body.triggers[0].secret).toBeUndefined();
    expect(listed.body.triggers[0].url).not.toContain(trigger.secret);

    const fired = await fire(trigger.url, 'name=value&x=1', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(fired.status).toBe(200);
    expect(fired.body.msg).toBe('Queued up.');
    const task = (await api('GET', `/tasks/${fired.body.id}`)).body;
    expect(task).toMatchObject({ code_name: 'deploy', code_id: codeId, payload: 'name=value&x=1' });

    // The header form of the secret; a `code_name` in the query cannot point it elsewhere.
    const viaHeader = await fire(
      `${e2e().url}/2/projects/${project.projectId}/triggers/${trigger.id}?code_name=other`,
      '{"a":1}',
      { 'x-kiln-trigger-secret': trigger.secret, 'content-type': 'application/json' },
    );
    expect(viaHeader.status).toBe(200);
    expect((await api('GET', `/tasks/${viaHeader.body.id}`)).body).toMatchObject({
      code_name: 'deploy',
      payload: '{"a":1}',
    });
    expect(await tasksOf('other')).toHaveLength(0);
  });

  it('a multipart body (a form post) becomes the payload byte for byte, like any other', async () => {
    const trigger = await createTrigger();
    const body =
      '--kiln-boundary\r\nContent-Disposition: form-data; name="ref"\r\n\r\nmain\r\n--kiln-boundary--\r\n';
    const fired = await fire(trigger.url, body, {
      'content-type': 'multipart/form-data; boundary=kiln-boundary',
    });
    expect(fired.status).toBe(200);
    expect((await api('GET', `/tasks/${fired.body.id}`)).body.payload).toBe(body);
    // IronWorker's own webhook route takes it the same way.
    const viaWebhook = await call(
      'POST',
      `/2/projects/${project.projectId}/tasks/webhook?code_name=deploy&oauth=${project.token}`,
      { body, headers: { 'content-type': 'multipart/form-data; boundary=kiln-boundary' } },
    );
    expect(viaWebhook.status).toBe(200);
    expect((await api('GET', `/tasks/${viaWebhook.body.id}`)).body.payload).toBe(body);
  });

  it('a bad, missing or revoked secret is a 401 and queues nothing', async () => {
    const trigger = await createTrigger();
    const before = (await tasksOf('deploy')).length;
    const base = `${e2e().url}/2/projects/${project.projectId}/triggers/${trigger.id}`;
    for (const url of [`${base}?secret=wrong`, base, `${base}?secret=`]) {
      const res = await fire(url, 'x');
      expect(res.status).toBe(401);
      expect(res.body.msg).toBe('Invalid or revoked trigger secret');
    }
    // The right secret on another trigger id, or another project's path, does not work either.
    const elsewhere = await newProject('triggers-elsewhere');
    const wrongProject = await fire(
      `${e2e().url}/2/projects/${elsewhere.projectId}/triggers/${trigger.id}?secret=${trigger.secret}`,
      'x',
    );
    expect(wrongProject.status).toBe(401);

    expect((await api('DELETE', `/codes/${codeId}/triggers/${trigger.id}`)).body).toEqual({
      msg: 'Revoked',
    });
    const revoked = await fire(trigger.url, 'x');
    expect(revoked.status).toBe(401);
    expect((await api('DELETE', `/codes/${codeId}/triggers/${trigger.id}`)).status).toBe(404);
    const listed = await api('GET', `/codes/${codeId}/triggers`);
    expect(listed.body.triggers.map((t: any) => t.id)).not.toContain(trigger.id);
    expect((await tasksOf('deploy')).length).toBe(before);
  });

  it('checks a GitHub-style HMAC of the body: a wrong or missing signature is a 401 and queues nothing', async () => {
    const trigger = await createTrigger({
      hmac_header: 'X-Hub-Signature-256',
      hmac_secret: 'gh-secret',
      hmac_prefix: 'sha256=',
    });
    expect(trigger.hmac_header).toBe('X-Hub-Signature-256');
    const body = '{"ref":"refs/heads/main"}';
    const sign = (secret: string, content: string) =>
      `sha256=${createHmac('sha256', secret).update(content).digest('hex')}`;
    const before = (await tasksOf('deploy')).length;

    const wrong = await fire(trigger.url, body, { 'x-hub-signature-256': sign('not-it', body) });
    expect(wrong.status).toBe(401);
    expect(wrong.body.msg).toContain('X-Hub-Signature-256');
    const tampered = await fire(trigger.url, body.replace('main', 'evil'), {
      'x-hub-signature-256': sign('gh-secret', body),
    });
    expect(tampered.status).toBe(401);
    expect((await fire(trigger.url, body)).status).toBe(401);
    expect((await tasksOf('deploy')).length).toBe(before);

    const good = await fire(trigger.url, body, { 'x-hub-signature-256': sign('gh-secret', body) });
    expect(good.status).toBe(200);
    expect((await api('GET', `/tasks/${good.body.id}`)).body.payload).toBe(body);

    const base64 = await createTrigger({
      hmac_header: 'X-Signature',
      hmac_secret: 'k',
      hmac_encoding: 'base64',
    });
    const mac = createHmac('sha256', 'k').update('hi').digest('base64');
    expect((await fire(base64.url, 'hi', { 'x-signature': mac })).status).toBe(200);
  });

  it('refuses a body over 64 KB with a 413, and bad trigger settings with a 400', async () => {
    const trigger = await createTrigger();
    const big = await fire(trigger.url, 'x'.repeat(64 * 1024 + 1), {
      'content-type': 'text/plain',
    });
    expect(big.status).toBe(413);
    for (const [body, msg] of [
      [{ hmac_header: 'X-Sig' }, 'hmac_header and hmac_secret go together'],
      [{ hmac_header: 'bad header', hmac_secret: 's' }, 'hmac_header must be an HTTP header name'],
      [{ hmac_header: 'X-Sig', hmac_secret: 's', hmac_encoding: 'hex64' }, 'hmac_encoding'],
    ] as const) {
      const res = await api('POST', `/codes/${codeId}/triggers`, body);
      expect(res.status).toBe(400);
      expect(res.body.msg).toContain(msg);
    }
    expect((await api('POST', `/codes/ffffffffffffffffffffffff/triggers`, {})).status).toBe(404);
  });

  it('a trigger of a deleted code queues nothing', async () => {
    const trigger = await createTrigger({}, otherCodeId);
    expect((await api('DELETE', `/codes/${otherCodeId}`)).status).toBe(200);
    const res = await fire(trigger.url, 'x');
    expect(res.status).toBe(404);
    expect(await tasksOf('other')).toHaveLength(0);
  });
});
