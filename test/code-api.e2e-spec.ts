import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  call,
  e2e,
  getTask,
  newProject,
  queueTask,
  registerCode,
  TestProject,
  waitForTask,
} from './support/kiln';
import { sleep } from './support/processes';

describe('the code API', () => {
  let project: TestProject;
  let base: string;
  const post = (path: string) => call('POST', `${base}${path}`, { token: project.token });
  const get = (path: string) => call('GET', `${base}${path}`, { token: project.token });

  beforeAll(async () => {
    project = await newProject('code-api');
    base = `/2/projects/${project.projectId}`;
  });

  it('lists revisions, newest first, and downloads one as a zip', async () => {
    const id = await registerCode(project, 'revs', { command: 'sh /kiln/run.sh' });
    await registerCode(project, 'revs', { env_vars: { V: '2' } });
    const revisions = await get(`/codes/${id}/revisions`);
    expect(revisions.status).toBe(200);
    expect(revisions.body.revisions.map((r: { rev: number }) => r.rev)).toEqual([2, 1]);
    expect(revisions.body.revisions[1]).toMatchObject({
      code_id: id,
      name: 'revs',
      command: 'sh /kiln/run.sh',
    });

    const res = await fetch(`${e2e().url}${base}/codes/${id}/download?revision=1`, {
      headers: { authorization: `OAuth ${project.token}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/zip');
    expect(res.headers.get('content-disposition')).toBe('filename=revs_1.zip');
    const dir = mkdtempSync(join(tmpdir(), 'kiln-zip-'));
    try {
      writeFileSync(join(dir, 'code.zip'), Buffer.from(await res.arrayBuffer()));
      execFileSync('busybox', ['unzip', '-q', 'code.zip'], { cwd: dir });
      const manifest = JSON.parse(readFileSync(join(dir, 'kiln-code.json'), 'utf8'));
      expect(manifest).toMatchObject({
        rev: 1,
        image: 'kiln-test/busybox:latest',
        command: 'sh /kiln/run.sh',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect((await get(`/codes/${id}/download?revision=9`)).status).toBe(404);
  });

  it('pauses a code: its tasks stay queued until it is resumed', async () => {
    const id = await registerCode(project, 'pausable');
    expect((await post(`/codes/${id}/pause_task_queue`)).body).toEqual({ msg: 'Paused' });
    expect((await post(`/codes/${id}/pause_task_queue`)).body).toEqual({ msg: 'Already paused' });
    expect((await get(`/codes/${id}`)).body.max_concurrency).toBe(-1);
    const task = await queueTask(project, { code_name: 'pausable', payload: '{}' });
    // A fixed window, not a wait for something: paused, the task must not start within it.
    await sleep(3000);
    expect((await getTask(project, task)).status).toBe('queued');
    expect((await post(`/codes/${id}/resume_task_queue`)).body).toEqual({ msg: 'Resumed' });
    expect((await post(`/codes/${id}/resume_task_queue`)).body).toEqual({ msg: 'Already resumed' });
    expect((await waitForTask(project, task)).status).toBe('complete');
    expect((await get(`/codes/${id}`)).body.max_concurrency).toBeUndefined();
  });

  it('counts tasks per status', async () => {
    const id = await registerCode(project, 'counted');
    const ok = await queueTask(project, { code_name: 'counted', payload: '{}' });
    const bad = await queueTask(project, { code_name: 'counted', payload: '{"exit":1}' });
    await waitForTask(project, ok);
    await waitForTask(project, bad);
    const stats = await get(`/codes/${id}/stats`);
    expect(stats.body).toEqual({
      queued: 0,
      preparing: 0,
      running: 0,
      complete: 1,
      error: 1,
      cancelled: 0,
      killed: 0,
      timeout: 0,
    });
    const past = await get(`/codes/${id}/stats?start_date=1&end_date=2`);
    expect(past.body.complete).toBe(0);
  });

  it('cancel_all cancels every task of the code that has not ended', async () => {
    const id = await registerCode(project, 'cancel-all');
    const running = await queueTask(project, { code_name: 'cancel-all', payload: '{"sleep":60}' });
    const delayed = await queueTask(project, {
      code_name: 'cancel-all',
      payload: '{}',
      delay: 600,
    });
    await waitForTask(project, running, (t) => t.status === 'running');
    const res = await post(`/codes/${id}/cancel_all`);
    expect(res.status).toBe(200);
    expect(res.body.msg).toBe('Cancelled');
    expect((await getTask(project, delayed)).status).toBe('cancelled');
    expect((await waitForTask(project, running, (t) => t.duration > 0)).status).toBe('cancelled');
  });

  it('deletes a code: gone from the API, cannot be queued, its name makes a new code', async () => {
    const id = await registerCode(project, 'doomed');
    const res = await call('DELETE', `${base}/codes/${id}`, { token: project.token });
    expect(res.body).toEqual({ msg: 'Deleted' });
    expect((await get(`/codes/${id}`)).status).toBe(404);
    const queue = await call('POST', `${base}/tasks`, {
      token: project.token,
      json: { tasks: [{ code_name: 'doomed' }] },
    });
    expect(queue.status).toBe(404);
    const again = await registerCode(project, 'doomed');
    expect(again).not.toBe(id);
    expect((await get(`/codes/${again}`)).body.rev).toBe(1);
  });
});
