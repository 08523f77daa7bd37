import { ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  Kiln,
  KilnError,
  KilnTimeoutError,
  Task,
  UploadProgress,
  WEBHOOK_EVENTS,
  WebhookDelivery,
  WebhookVerificationError,
  verifyWebhook,
} from '@kiln/client';
import { zipOf } from '../libs/images/src/zip.fixture';
import { buildTestImage, docker } from './support/images';
import {
  call,
  e2e,
  HEALTHY_ENDPOINT,
  newProject,
  TEST_IMAGE,
  TestProject,
  waitUntil,
} from './support/kiln';
import { sleep, startApp, stopApp, waitForHealthy } from './support/processes';
import { Receiver, validSignatures } from './support/receiver';

/**
 * `@kiln/client` against the real Kiln that global-setup started: every method, typed errors,
 * retries on 503, the live log (`?follow=1`) the client follows, uploads of a real `docker save`
 * tarball, and webhooks delivered to a receiver on 127.0.0.1 (allow-listed by global-setup).
 */
describe('@kiln/client against a real Kiln', () => {
  let project: TestProject;
  let kiln: Kiln;
  const isolated = { cwd: null, configFile: null, env: {} } as const;

  beforeAll(async () => {
    project = await newProject('client');
    kiln = new Kiln({
      url: e2e().url,
      projectId: project.projectId,
      token: project.token,
      ...isolated,
    });
    await kiln.codes.register({ name: 'hello', image: TEST_IMAGE });
  });

  describe('codes', () => {
    it('register, list, get and delete', async () => {
      const answer = await kiln.codes.register({
        name: 'scratch',
        image: TEST_IMAGE,
        envVars: { MODE: 'test' },
        retries: 2,
        retriesDelay: 5,
        maxConcurrency: 3,
      });
      expect(answer).toEqual({
        id: expect.stringMatching(/^[0-9a-f]{24}$/),
        msg: 'Upload successful.',
      });
      const code = await kiln.codes.get(answer.id);
      expect(code).toMatchObject({
        name: 'scratch',
        rev: 1,
        env_vars: { MODE: 'test' },
        retries: 2,
        max_concurrency: 3,
      });
      const names: string[] = [];
      for await (const c of kiln.codes.list()) names.push(c.name);
      expect(names.sort()).toEqual(['hello', 'scratch']);
      expect(await kiln.codes.delete(answer.id)).toEqual({ msg: 'Deleted' });
      await expect(kiln.codes.get(answer.id)).rejects.toMatchObject({ status: 404 });
    });
  });

  describe('uploads', () => {
    const tag = `kiln-test8/client-${randomBytes(3).toString('hex')}:a`;
    let dir: string;
    let tarball: string;

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'kiln-client-upload-'));
      buildTestImage(tag, 'client');
      tarball = join(dir, 'image.tar');
      docker(['save', '-o', tarball, tag]);
    }, 120_000);

    afterAll(() => {
      rmSync(dir, { recursive: true, force: true });
      try {
        docker(['rmi', tag]);
      } catch {
        // already gone
      }
    });

    it('codes.upload streams a docker save tarball with progress; tasks.run runs the image', async () => {
      const progress: UploadProgress[] = [];
      const answer = await kiln.codes.upload(tarball, {
        name: 'uploaded',
        onProgress: (p) => progress.push(p),
      });
      const registry = process.env.REGISTRY_URL!.replace(/\./g, '\\.');
      expect(answer).toEqual({
        id: expect.stringMatching(/^[0-9a-f]{24}$/),
        msg: 'Upload successful.',
        rev: 1,
        image: expect.stringMatching(
          new RegExp(`^${registry}/kiln/${project.projectId}/uploaded@sha256:[0-9a-f]{64}$`),
        ),
      });
      const size = statSync(tarball).size;
      expect(progress.length).toBeGreaterThan(1);
      expect(progress.every((p) => p.total === size)).toBe(true);
      const sent = progress.map((p) => p.sent);
      expect(sent.every((bytes, i) => i === 0 || bytes > sent[i - 1])).toBe(true);
      expect(sent[sent.length - 1]).toBe(size);
      expect(await kiln.codes.get(answer.id)).toMatchObject({
        name: 'uploaded',
        rev: 1,
        image: answer.image,
      });

      const run = await kiln.tasks.run('uploaded', { from: 'client' }, { timeoutMs: 120_000 });
      expect(run.task).toMatchObject({ status: 'complete', code_rev: '1' });
      expect(run.output).toBe('variant=client\n{"from":"client"}'); // run.sh cats the payload as is
    });

    it('codes.upload sends a zip package with its stack and command; its task runs the zip', async () => {
      const zip = join(dir, 'hello.zip');
      writeFileSync(
        zip,
        zipOf([
          { name: 'hello.sh', content: 'echo "zip says $(cat "$PAYLOAD_FILE") $(cat word.txt)"\n' },
          { name: 'word.txt', content: 'kiln' },
        ]),
      );
      const progress: UploadProgress[] = [];
      const answer = await kiln.codes.upload(zip, {
        name: 'zipped-client',
        stack: 'busybox',
        command: 'sh hello.sh',
        onProgress: (p) => progress.push(p),
      });
      expect(answer).toMatchObject({
        msg: 'Upload successful.',
        rev: 1,
        image: 'kiln-test/busybox:latest',
        zip_digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      });
      expect(progress[progress.length - 1]).toEqual({
        sent: statSync(zip).size,
        total: statSync(zip).size,
      });
      const run = await kiln.tasks.run('zipped-client', 'hi', { timeoutMs: 120_000 });
      expect(run.task).toMatchObject({ status: 'complete' });
      expect(run.output).toBe('zip says hi kiln\n');
    });

    it('a gzipped tarball makes a new revision of the same image', async () => {
      const gzipped = join(dir, 'image.tar.gz');
      writeFileSync(gzipped, gzipSync(readFileSync(tarball)));
      const first = await kiln.codes.upload(tarball, { name: 'zipped' });
      const second = await kiln.codes.upload(gzipped, { name: 'zipped' });
      expect(second).toMatchObject({ id: first.id, rev: 2, image: first.image });
    });

    it('a refused upload is a KilnError 400 with its msg, and creates nothing', async () => {
      const text = join(dir, 'notes.txt');
      writeFileSync(text, 'not a tarball\n'.repeat(100));
      // Big enough that Kiln answers before it has read it all.
      const noise = join(dir, 'noise.bin');
      writeFileSync(noise, randomBytes(8 * 1024 * 1024));
      for (const file of [text, noise]) {
        const error = await kiln.codes.upload(file, { name: 'broken' }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(KilnError);
        expect(error).toMatchObject({
          status: 400,
          msg: expect.stringContaining('not a tar archive'),
        });
      }
      const names: string[] = [];
      for await (const code of kiln.codes.list()) names.push(code.name);
      expect(names).not.toContain('broken');
    });
  });

  describe('tasks', () => {
    it('create, get, wait, log and run', async () => {
      const { id } = await kiln.tasks.create(
        'hello',
        { hello: 'world' },
        { label: 'client', priority: 1 },
      );
      const queued = await kiln.tasks.get(id);
      expect(queued).toMatchObject({ id, code_name: 'hello', label: 'client', priority: 1 });
      const task: Task = await kiln.tasks.wait(id, { timeoutMs: 60_000 });
      expect(task.status).toBe('complete');
      expect(await kiln.tasks.log(id)).toBe('{"hello":"world"}\n');

      const run = await kiln.tasks.run('hello', { exit: 2, stderr: 'bad' }, { timeoutMs: 60_000 });
      expect(run.task.status).toBe('error');
      expect(run.task.msg).toBe('exit code 2');
      expect(run.output).toBe('{"exit":2,"stderr":"bad"}\n'); // STDOUT alone
    });

    it('createMany, and list as an async iterator over pages with filters', async () => {
      const queued = await kiln.tasks.createMany([
        { codeName: 'hello', payload: '{"n":1}', label: 'many' },
        { codeName: 'hello', payload: { n: 2 }, label: 'many' },
        { codeName: 'hello', label: 'many' },
      ]);
      expect(queued).toHaveLength(3);
      await Promise.all(queued.map((t) => kiln.tasks.wait(t.id, { timeoutMs: 60_000 })));
      const listed: string[] = [];
      for await (const task of kiln.tasks.list({ label: 'many', perPage: 2 })) listed.push(task.id);
      expect(listed.sort()).toEqual(queued.map((t) => t.id).sort());
      const complete: string[] = [];
      for await (const task of kiln.tasks.list({ label: 'many', status: ['complete'] })) {
        complete.push(task.id);
      }
      expect(complete).toHaveLength(3);
      const none: Task[] = [];
      for await (const task of kiln.tasks.list({ label: 'many', status: 'error' })) none.push(task);
      expect(none).toEqual([]);
    });

    it('setProgress and cancel a running task; retry queues a new one', async () => {
      const { id } = await kiln.tasks.create('hello', { sleep: 60 });
      await waitUntil(
        'the task running',
        async () => (await kiln.tasks.get(id)).status === 'running',
      );
      expect(await kiln.tasks.setProgress(id, 42, 'half way')).toEqual({ msg: 'Progress set' });
      expect(await kiln.tasks.get(id)).toMatchObject({ percent: 42 });
      expect(await kiln.tasks.cancel(id)).toEqual({ msg: 'Cancelled' });
      expect((await kiln.tasks.wait(id, { timeoutMs: 30_000 })).status).toBe('cancelled');
      const again = await kiln.tasks.retry(id, { delay: 3600 });
      expect(again.id).not.toBe(id);
      expect(await kiln.tasks.get(again.id)).toMatchObject({
        status: 'queued',
        original_task_id: id,
      });
      await kiln.tasks.cancel(again.id);
    });

    it('wait gives up with KilnTimeoutError, and stops on an AbortSignal', async () => {
      const { id } = await kiln.tasks.create('hello', {}, { delay: 3600 });
      await expect(kiln.tasks.wait(id, { timeoutMs: 300 })).rejects.toBeInstanceOf(
        KilnTimeoutError,
      );
      const abort = new AbortController();
      setTimeout(() => abort.abort(new Error('stopped by the test')), 200);
      await expect(kiln.tasks.wait(id, { signal: abort.signal })).rejects.toThrow(
        'stopped by the test',
      );
      await kiln.tasks.cancel(id);
    });
  });

  describe('typed errors', () => {
    it('404, 400 and 401 arrive as KilnError with status and msg', async () => {
      const missing = await kiln.tasks.get('0'.repeat(24)).catch((e: unknown) => e);
      expect(missing).toBeInstanceOf(KilnError);
      expect(missing).toMatchObject({ status: 404, isNotFound: true });
      await expect(kiln.tasks.create('no-such-code', {})).rejects.toMatchObject({
        status: 404,
        msg: 'Code "no-such-code" not found',
      });
      await expect(kiln.tasks.get('not-an-id')).rejects.toMatchObject({ status: 400 });
      const stranger = new Kiln({
        url: e2e().url,
        projectId: project.projectId,
        token: 'wrong',
        ...isolated,
      });
      await expect(stranger.tasks.get('0'.repeat(24))).rejects.toMatchObject({
        status: 401,
        isAuth: true,
      });
      const nowhere = new Kiln({
        url: 'http://127.0.0.1:1',
        projectId: project.projectId,
        token: 't',
        retries: 1,
        retryDelayMs: 10,
        ...isolated,
      });
      await expect(nowhere.tasks.get('0'.repeat(24))).rejects.toMatchObject({
        status: 0,
        msg: expect.stringContaining('cannot reach Kiln'),
      });
    });
  });

  describe('retries', () => {
    let proxy: Server;
    let refusals = 0;
    let forwarded = 0;

    beforeAll(async () => {
      // A loopback proxy that answers 503 to the first `refusals` requests, then forwards to Kiln.
      proxy = createServer((req, res) => {
        const parts: Buffer[] = [];
        req.on('data', (part: Buffer) => parts.push(part));
        req.on('end', () => {
          if (refusals > 0) {
            refusals--;
            res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' });
            res.end('{"msg":"Database unavailable, retry later"}');
            return;
          }
          forwarded++;
          const body = parts.length ? Buffer.concat(parts) : undefined;
          fetch(`${e2e().url}${req.url}`, {
            method: req.method,
            headers: req.headers as Record<string, string>,
            body,
          })
            .then(async (answer) => {
              res.writeHead(answer.status, {
                'content-type': answer.headers.get('content-type') ?? 'text/plain',
              });
              res.end(Buffer.from(await answer.arrayBuffer()));
            })
            .catch(() => res.destroy());
        });
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    });

    afterAll(async () => {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    });

    it('retries an idempotent call after 503s with backoff, and not a create', async () => {
      const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const viaProxy = new Kiln({
        url,
        projectId: project.projectId,
        token: project.token,
        retryDelayMs: 20,
        ...isolated,
      });
      const { id } = await kiln.tasks.create('hello', { via: 'proxy' });
      refusals = 2;
      expect((await viaProxy.tasks.get(id)).id).toBe(id);
      expect(refusals).toBe(0);
      expect(forwarded).toBe(1);
      refusals = 1;
      await expect(viaProxy.tasks.create('hello', {})).rejects.toMatchObject({ status: 503 });
      expect(forwarded).toBe(1); // the create was not sent again
      await kiln.tasks.wait(id, { timeoutMs: 60_000 });
    });
  });

  describe('schedules', () => {
    it('create (cron + timezone), get, list, update and cancel', async () => {
      const { id } = await kiln.schedules.create(
        'hello',
        { kind: 'daily' },
        { cron: '0 9 * * 1-5', timezone: 'Europe/Paris', label: 'daily' },
      );
      expect(await kiln.schedules.get(id)).toMatchObject({
        id,
        code_name: 'hello',
        status: 'scheduled',
        cron: '0 9 * * 1-5',
        timezone: 'Europe/Paris',
        payload: '{"kind":"daily"}',
      });
      const every = await kiln.schedules.create('hello', '{}', {
        runEvery: 3600,
        startAt: new Date(Date.now() + 86_400_000),
      });
      const ids: string[] = [];
      for await (const schedule of kiln.schedules.list()) ids.push(schedule.id);
      expect(ids.sort()).toEqual([id, every.id].sort());
      expect(
        await kiln.schedules.update(id, { label: 'weekdays', payload: { kind: 'weekday' } }),
      ).toEqual({ msg: 'Updated' });
      expect(await kiln.schedules.get(id)).toMatchObject({
        label: 'weekdays',
        payload: '{"kind":"weekday"}',
        cron: '0 9 * * 1-5',
      });
      expect(await kiln.schedules.cancel(id)).toEqual({ msg: 'Cancelled' });
      expect(await kiln.schedules.cancel(every.id)).toEqual({ msg: 'Cancelled' });
      expect((await kiln.schedules.get(id)).status).toBe('cancelled');
      await expect(kiln.schedules.create('hello', {}, { runEvery: 10 })).rejects.toMatchObject({
        status: 400,
      });
    });
  });

  describe('webhooks', () => {
    let receiver: Receiver;
    const to = (path: string) => receiver.received.filter((r) => r.path === path);

    beforeAll(async () => {
      receiver = await new Receiver().start();
    });

    afterAll(async () => {
      await receiver.close();
    });

    it('create, list, get, update and delete; the secret is in the create answer only', async () => {
      const created = await kiln.webhooks.create({
        url: receiver.url('/crud'),
        events: ['task.complete', 'task.error'],
        codeName: 'hello',
        description: 'client',
      });
      const { secret, ...webhook } = created;
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/=]{32,}$/);
      expect(webhook).toEqual({
        id: expect.stringMatching(/^[0-9a-f]{24}$/),
        url: receiver.url('/crud'),
        events: ['task.complete', 'task.error'],
        code_name: 'hello',
        enabled: true,
        disabled_reason: null,
        description: 'client',
        created_at: expect.stringMatching(/Z$/),
        updated_at: expect.stringMatching(/Z$/),
        ...HEALTHY_ENDPOINT,
      });
      expect(await kiln.webhooks.list()).toEqual([webhook]);
      expect(await kiln.webhooks.get(webhook.id)).toEqual(webhook);

      const changed = await kiln.webhooks.update(webhook.id, {
        enabled: false,
        events: ['task.killed'],
        codeName: null,
      });
      expect(changed).toEqual({
        ...webhook,
        enabled: false,
        events: ['task.killed'],
        code_name: null,
        updated_at: expect.any(String),
      });
      expect(await kiln.webhooks.update(webhook.id, { description: 'renamed' })).toMatchObject({
        description: 'renamed',
        enabled: false,
        events: ['task.killed'],
      });
      const defaults = await kiln.webhooks.create({ url: receiver.url('/defaults') });
      expect(defaults).toMatchObject({
        events: [...WEBHOOK_EVENTS],
        code_name: null,
        enabled: true,
      });

      expect(await kiln.webhooks.delete(webhook.id)).toEqual({ msg: 'Deleted' });
      expect(await kiln.webhooks.delete(defaults.id)).toEqual({ msg: 'Deleted' });
      await expect(kiln.webhooks.get(webhook.id)).rejects.toMatchObject({
        status: 404,
        msg: 'Webhook not found',
      });
      await expect(kiln.webhooks.create({ url: 'ftp://127.0.0.1/x' })).rejects.toMatchObject({
        status: 400,
        msg: expect.stringContaining('http or https'),
      });
      expect(await kiln.webhooks.list()).toEqual([]);
    });

    it('a task run delivers signed events; deliveries pages them; rotateSecret and redeliver', async () => {
      const hook = await kiln.webhooks.create({
        url: receiver.url('/run'),
        events: ['task.queued', 'task.running', 'task.complete'],
        codeName: 'hello',
      });
      const { task } = await kiln.tasks.run('hello', { hooked: 1 }, { timeoutMs: 60_000 });
      await receiver.waitFor(() => to('/run').some((r) => r.json?.type === 'task.complete'));
      const got = to('/run');
      expect(got.map((r) => verifyWebhook(r.body, r.headers, hook.secret).type)).toEqual([
        'task.queued',
        'task.running',
        'task.complete',
      ]);
      const complete = got[2];
      expect(validSignatures(complete, hook.secret)).toBe(1); // the receiver's own check agrees
      expect(verifyWebhook(complete.body, complete.headers, hook.secret)).toEqual({
        type: 'task.complete',
        timestamp: expect.stringMatching(/Z$/),
        data: {
          task_id: task.id,
          project_id: project.projectId,
          code_id: task.code_id,
          code_name: 'hello',
          status: 'complete',
          attempt: 1,
          retry_count: 0,
          original_task_id: null,
          schedule_id: null,
          label: '',
          created_at: task.created_at,
          start_time: task.start_time,
          end_time: task.end_time,
          msg: '',
        },
      });
      const stranger = `whsec_${randomBytes(24).toString('base64')}`;
      expect(() => verifyWebhook(complete.body, complete.headers, stranger)).toThrow(
        WebhookVerificationError,
      );

      const deliveries = async () => {
        const all: WebhookDelivery[] = [];
        for await (const d of kiln.webhooks.deliveries(hook.id, { perPage: 2 })) all.push(d);
        return all;
      };
      await waitUntil('every delivery made', async () =>
        (await deliveries()).every((d) => d.state === 'delivered'),
      );
      const log = await deliveries();
      expect(log.map((d) => d.event_type)).toEqual([
        'task.complete',
        'task.running',
        'task.queued',
      ]);
      expect(log[0]).toEqual({
        id: expect.stringMatching(/^[0-9a-f]{24}$/),
        webhook_id: hook.id,
        message_id: complete.headers['webhook-id'],
        event_type: 'task.complete',
        task_id: task.id,
        attempt: 1,
        status_code: 200,
        error: null,
        duration_ms: expect.any(Number),
        state: 'delivered',
        created_at: expect.stringMatching(/Z$/),
        next_attempt_at: null,
      });

      const rotated = await kiln.webhooks.rotateSecret(hook.id);
      expect(rotated).toEqual({ secret: expect.stringMatching(/^whsec_/), msg: 'Secret rotated.' });
      expect(rotated.secret).not.toBe(hook.secret);
      expect(await kiln.webhooks.redeliver(hook.id, log[0].id)).toEqual({
        msg: 'Redelivery queued.',
      });
      await receiver.waitFor(() => to('/run').length >= 4);
      const again = to('/run')[3];
      expect(again.headers['webhook-id']).toBe(complete.headers['webhook-id']);
      expect(again.body).toBe(complete.body);
      // Signed with the new secret and, during the overlap, the old one.
      expect(verifyWebhook(again.body, again.headers, rotated.secret).type).toBe('task.complete');
      expect(verifyWebhook(again.body, again.headers, hook.secret).type).toBe('task.complete');
      await waitUntil('the redelivery', async () => (await deliveries())[0].attempt === 2);
      expect((await deliveries())[0]).toMatchObject({ id: log[0].id, state: 'delivered' });

      await expect(kiln.webhooks.redeliver(hook.id, 'f'.repeat(24))).rejects.toMatchObject({
        status: 404,
      });
      await kiln.webhooks.delete(hook.id);
    });

    it('tasks.create with a webhook URL: called once when the task ends, signed with taskSecret()', async () => {
      const { id } = await kiln.tasks.create(
        'hello',
        { exit: 3 },
        { webhook: receiver.url('/task') },
      );
      expect((await kiln.tasks.get(id)).webhook).toBe(receiver.url('/task'));
      expect((await kiln.tasks.wait(id, { timeoutMs: 60_000 })).status).toBe('error');
      await receiver.waitFor(() => to('/task').length >= 1);
      // A fixed window, not a wait for something: no second call may arrive within it.
      await sleep(500);
      expect(to('/task')).toHaveLength(1);
      const secret = await kiln.webhooks.taskSecret();
      expect(secret).toMatch(/^whsec_/);
      expect(await kiln.webhooks.taskSecret()).toBe(secret);
      const [got] = to('/task');
      expect(verifyWebhook(got.body, got.headers, secret)).toMatchObject({
        type: 'task.error',
        data: { task_id: id, status: 'error', msg: 'exit code 3' },
      });
    });
  });

  describe('triggers', () => {
    it('create, fire without a token, list and revoke; an HMAC trigger checks the body', async () => {
      let codeId = '';
      for await (const code of kiln.codes.list()) if (code.name === 'hello') codeId = code.id;
      const trigger = await kiln.triggers.create(codeId);
      const { secret, url, ...listed } = trigger;
      expect(listed).toEqual({
        id: expect.stringMatching(/^[0-9a-f]{24}$/),
        code_id: codeId,
        code_name: 'hello',
        hmac_header: null,
        hmac_prefix: '',
        hmac_encoding: 'hex',
        cluster: 'default',
        created_at: expect.stringMatching(/Z$/),
      });
      const bare = `${e2e().url}/2/projects/${project.projectId}/triggers/${trigger.id}`;
      expect(url).toBe(`${bare}?secret=${secret}`);
      const fired = await fetch(url, { method: 'POST', body: '{"via":"trigger"}' });
      expect(fired.status).toBe(200);
      const { id } = (await fired.json()) as { id: string };
      expect((await kiln.tasks.wait(id, { timeoutMs: 60_000 })).payload).toBe('{"via":"trigger"}');
      expect(await kiln.triggers.list(codeId)).toEqual([{ ...listed, url: bare }]);
      expect(await kiln.triggers.revoke(codeId, trigger.id)).toEqual({ msg: 'Revoked' });
      expect(await kiln.triggers.list(codeId)).toEqual([]);
      expect((await fetch(url, { method: 'POST', body: '{}' })).status).toBe(401);

      const signed = await kiln.triggers.create(codeId, {
        hmacHeader: 'X-Signature',
        hmacSecret: 'shh',
        hmacPrefix: 'sha256=',
        hmacEncoding: 'base64',
      });
      expect(signed).toMatchObject({
        hmac_header: 'X-Signature',
        hmac_prefix: 'sha256=',
        hmac_encoding: 'base64',
      });
      const body = '{"signed":true}';
      const mac = createHmac('sha256', 'shh').update(body).digest('base64');
      const withMac = await fetch(signed.url, {
        method: 'POST',
        body,
        headers: { 'x-signature': `sha256=${mac}` },
      });
      expect(withMac.status).toBe(200);
      expect((await fetch(signed.url, { method: 'POST', body })).status).toBe(401);
      await kiln.tasks.wait(((await withMac.json()) as { id: string }).id, { timeoutMs: 60_000 });
      await kiln.triggers.revoke(codeId, signed.id);
      await expect(
        kiln.triggers.create(codeId, { hmacHeader: 'X-Signature' }),
      ).rejects.toMatchObject({ status: 400, msg: expect.stringContaining('go together') });
    });
  });

  describe('credentials', () => {
    it('add, list (never the password), replace, remove', async () => {
      expect(await kiln.credentials.list()).toEqual([]);
      expect(
        await kiln.credentials.add({
          serverAddress: 'http://127.0.0.1:5999',
          username: 'ci',
          password: 'first-password',
          email: 'ci@example.com',
        }),
      ).toEqual({ msg: 'Credentials added.' });
      const [stored] = await kiln.credentials.list();
      expect(stored).toEqual({
        serveraddress: '127.0.0.1:5999',
        username: 'ci',
        created_at: expect.stringMatching(/Z$/),
        updated_at: expect.stringMatching(/Z$/),
      });
      await kiln.credentials.add({
        serverAddress: '127.0.0.1:5999',
        username: 'deploy',
        password: 'second-password',
      });
      const listed = await kiln.credentials.list();
      expect(listed).toMatchObject([{ serveraddress: '127.0.0.1:5999', username: 'deploy' }]);
      expect(JSON.stringify(listed)).not.toContain('password');
      await expect(
        kiln.credentials.add({ serverAddress: 'not a host!', username: 'u', password: 'p' }),
      ).rejects.toMatchObject({ status: 400, msg: expect.stringContaining('not a registry host') });
      expect(await kiln.credentials.remove('127.0.0.1:5999')).toEqual({ msg: 'Deleted' });
      expect(await kiln.credentials.list()).toEqual([]);
      await expect(kiln.credentials.remove('127.0.0.1:5999')).rejects.toMatchObject({
        status: 404,
      });
    });
  });

  describe('tokens', () => {
    it('create (a kiln_ secret, shown once), list (never the secret), use, revoke', async () => {
      const before = await kiln.tokens.list();
      expect(before).toEqual([
        {
          id: expect.stringMatching(/^[0-9a-f]{24}$/),
          name: '',
          role: 'manage',
          created_at: expect.stringMatching(/Z$/),
          last_used_at: expect.stringMatching(/Z$/),
          expires_at: null,
        },
      ]);
      const expiresAt = new Date(Date.now() + 3_600_000);
      const created = await kiln.tokens.create({ name: 'reader', role: 'read', expiresAt });
      expect(created).toMatchObject({
        msg: 'Token created',
        project_id: project.projectId,
        name: 'reader',
        role: 'read',
        expires_at: expiresAt.toISOString(),
        last_used_at: null,
      });
      expect(created.token).toMatch(/^kiln_/);
      const listed = await kiln.tokens.list();
      expect(listed.map((t) => t.id)).toEqual([before[0].id, created.id]);
      expect(JSON.stringify(listed)).not.toContain(created.token);
      const reader = new Kiln({
        url: e2e().url,
        projectId: project.projectId,
        token: created.token,
        ...isolated,
      });
      expect((await reader.tasks.list().next()).value).toEqual(
        (await kiln.tasks.list().next()).value,
      );
      await expect(reader.tasks.create('hello', {})).rejects.toMatchObject({
        status: 403,
        msg: expect.stringContaining('role is read'),
      });
      await expect(reader.tokens.list()).rejects.toMatchObject({ status: 403 });
      await expect(kiln.tokens.create({ role: 'owner' as never })).rejects.toMatchObject({
        status: 400,
        msg: expect.stringContaining('role must be one of read, queue, manage'),
      });
      expect(await kiln.tokens.revoke(created.id)).toEqual({ msg: 'Revoked' });
      await expect(reader.tasks.list().next()).rejects.toMatchObject({ status: 401 });
      await expect(kiln.tokens.revoke(created.id)).rejects.toMatchObject({ status: 404 });
      expect((await kiln.tokens.list()).map((t) => t.id)).toEqual([before[0].id]);
    });
  });

  describe('live log', () => {
    it('follow: lines printed 1 s apart arrive about 1 s apart, while the task runs', async () => {
      const { id } = await kiln.tasks.create('hello', { lines: 4, interval: 1 });
      const arrivals: { line: string; at: number }[] = [];
      for await (const line of kiln.tasks.follow(id)) arrivals.push({ line, at: Date.now() });
      expect(arrivals.map((a) => a.line)).toEqual([
        '{"lines":4,"interval":1}',
        'line 1',
        'line 2',
        'line 3',
        'line 4',
      ]);
      const lineTimes = arrivals.slice(1).map((a) => a.at);
      const gaps = lineTimes.slice(1).map((at, i) => at - lineTimes[i]);
      for (const gap of gaps) {
        expect(gap).toBeGreaterThan(500);
        expect(gap).toBeLessThan(1800);
      }
      const task = await kiln.tasks.get(id);
      expect(task.status).toBe('complete');
      // The first line came while the task still ran: about 3 s before it ended.
      expect(Date.parse(task.end_time) - lineTimes[0]).toBeGreaterThan(2000);
    });

    it('a late follower sees everything; stream ends with the final status', async () => {
      const { id } = await kiln.tasks.create('hello', { lines: 3, exit: 4 });
      await kiln.tasks.wait(id, { timeoutMs: 60_000 });
      const lines: string[] = [];
      for await (const line of kiln.tasks.follow(id)) lines.push(line);
      expect(lines).toEqual(['{"lines":3,"exit":4}', 'line 1', 'line 2', 'line 3']);
      const events = [];
      for await (const event of kiln.tasks.stream(id)) events.push(event);
      expect(events[events.length - 1]).toEqual({ type: 'end', status: 'error' });
    });

    it('?follow=1 as plain text waits for a queued task and ends with it; plain GET …/log is unchanged', async () => {
      const { id } = await kiln.tasks.create('hello', { lines: 2, interval: 0.5 }, { delay: 1 });
      const path = `/2/projects/${project.projectId}/tasks/${id}/log`;
      const early = await call('GET', path, { token: project.token });
      expect(early.status).toBe(404);
      expect(early.body.msg).toMatch(/Log not found/);
      const followed = await call('GET', `${path}?follow=1`, { token: project.token });
      expect(followed.status).toBe(200);
      expect(followed.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(followed.text).toBe('{"lines":2,"interval":0.5}\nline 1\nline 2\n');
      expect((await kiln.tasks.get(id)).status).toBe('complete');
      const plain = await call('GET', path, { token: project.token });
      expect(plain.text).toBe(followed.text);
      const sse = await call('GET', `${path}?follow=1`, {
        token: project.token,
        headers: { accept: 'text/event-stream' },
      });
      expect(sse.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(sse.text).toMatch(/^id: \d+\.1\ndata: "/);
      expect(sse.text.endsWith('event: end\ndata: {"status":"complete"}\n\n')).toBe(true);
      const unknown = await call(
        'GET',
        `/2/projects/${project.projectId}/tasks/${'0'.repeat(24)}/log?follow=1`,
        { token: project.token },
      );
      expect(unknown.status).toBe(404);
    });

    describe('across API replicas', () => {
      let second: ChildProcess;
      let secondUrl: string;

      beforeAll(async () => {
        const port = Number(new URL(e2e().url).port) + 2;
        second = startApp('api', { ...e2e().env, KILN_API_PORT: String(port) }, 'api-replica');
        secondUrl = `http://127.0.0.1:${port}`;
        await waitForHealthy(`${secondUrl}/healthz`);
      });

      afterAll(async () => {
        if (second) await stopApp(second);
      });

      it('two replicas stream the same live output', async () => {
        const other = new Kiln({
          url: secondUrl,
          projectId: project.projectId,
          token: project.token,
          ...isolated,
        });
        const { id } = await kiln.tasks.create('hello', { lines: 3, interval: 0.7 });
        const collect = async (client: Kiln) => {
          const seen: string[] = [];
          for await (const line of client.tasks.follow(id)) seen.push(line);
          return seen;
        };
        const [viaFirst, viaSecond] = await Promise.all([collect(kiln), collect(other)]);
        const expected = ['{"lines":3,"interval":0.7}', 'line 1', 'line 2', 'line 3'];
        expect(viaFirst).toEqual(expected);
        expect(viaSecond).toEqual(expected);
      });
    });
  });
});
