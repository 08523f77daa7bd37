/**
 * Kiln driven by IronWorker's own Node client, `iron_worker@0.1.8` (on `iron_core@0.2.7`),
 * unchanged: every call below goes through the client's `Client` methods (or, where the client
 * drops the answer's `msg`, through the `APIClient` it wraps, `client.api`), so the assertions
 * hold Kiln to what that client sends and decodes, with the exact `msg` strings and field types of
 * the IronWorker REST API v2 reference (§2, §3, §7).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import {
  e2e,
  expectStderrInterleaved,
  getTask,
  grantCluster,
  newProject,
  queueTask,
  registerCode,
  TEST_IMAGE,
  TestProject,
  waitForTask,
} from './support/kiln';

type Callback<T = any> = (error: Error | null, body: T) => void;
type CoreCallback = (error: Error | null, response: any, body: any) => void;

/** The part of iron_worker's `APIClient` (an iron_core `Client`) the tests use. */
interface IronWorkerApi {
  options: Record<string, unknown>;
  url(): string;
  headers(): Record<string, string>;
  get(path: string, params: Record<string, unknown>, cb: CoreCallback): void;
  post(path: string, params: Record<string, unknown>, cb: CoreCallback): void;
  delete(path: string, params: Record<string, unknown>, cb: CoreCallback): void;
  codesUpload(params: Record<string, unknown>, cb: Callback): void;
  tasksCreate(tasks: TaskToCreate[], cb: Callback): void;
}

interface TaskToCreate {
  codeName: string;
  payload: unknown;
  options?: Record<string, unknown>;
}

/** iron_worker's `Client`: node-style callbacks, `(error, body)`. */
interface IronWorkerClient {
  api: IronWorkerApi;
  codesList(options: Record<string, unknown>, cb: Callback): void;
  codesGet(codeId: string, cb: Callback): void;
  codesDelete(codeId: string, cb: Callback): void;
  codesRevisions(codeId: string, options: Record<string, unknown>, cb: Callback): void;
  codesDownload(codeId: string, options: Record<string, unknown>, cb: Callback): void;
  codesUpload(name: string, destination: string, fileName: string, cb: Callback): void;
  tasksList(options: Record<string, unknown>, cb: Callback): void;
  tasksGet(taskId: string, cb: Callback): void;
  tasksCreate(
    codeName: string,
    payload: unknown,
    options: Record<string, unknown>,
    cb: Callback,
  ): void;
  tasksCreateBulk(tasks: TaskToCreate[], cb: Callback): void;
  tasksRetry(taskId: string, delay: number | undefined, cb: Callback): void;
  tasksCancel(taskId: string, cb: Callback): void;
  tasksCancelAll(codeId: string, cb: Callback): void;
  tasksLog(taskId: string, cb: Callback): void;
  tasksStdout(taskId: string, cb: Callback): void;
  tasksSetProgress(taskId: string, options: Record<string, unknown>, cb: Callback): void;
  tasksWaitFor(taskId: string, options: Record<string, unknown>, cb: Callback): void;
  tasksWaitForLog(taskId: string, options: Record<string, unknown>, cb: Callback): void;
  tasksRun(codeName: string, params: unknown, options: Record<string, unknown>, cb: Callback): void;
}

type ClientClass = new (options: Record<string, unknown>) => IronWorkerClient;

// The package ships no types; load it as CommonJS, exactly as a Node user would.
const load = createRequire(__filename);
const { Client } = load('iron_worker') as { Client: ClientClass };
const IRON_WORKER_DIR = dirname(load.resolve('iron_worker/package.json'));

/** Runs one callback-style client call as a promise: rejects with the client's error. */
function ask<T = any>(invoke: (cb: Callback<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    invoke((error, body) => (error ? reject(error) : resolve(body)));
  });
}

/** Runs one client call that must fail, and returns the Error the client produced. */
async function failure(invoke: (cb: Callback) => void): Promise<Error> {
  const outcome = await new Promise<{ error: Error | null; body: unknown }>((resolve) => {
    invoke((error, body) => resolve({ error, body }));
  });
  if (!outcome.error) throw new Error(`expected an error, got ${JSON.stringify(outcome.body)}`);
  expect(outcome.error).toBeInstanceOf(Error);
  return outcome.error;
}

/** One raw iron_core request, to see the status and headers the client's methods hide. */
function raw(
  api: IronWorkerApi,
  method: 'get' | 'post' | 'delete',
  path: string,
  params: Record<string, unknown> = {},
): Promise<{ status: number; type: string; headers: Record<string, string>; body: any }> {
  return new Promise((resolve, reject) => {
    api[method](path, params, (error, response, body) => {
      if (error) return reject(error);
      resolve({
        status: response.statusCode as number,
        type: String(response.headers['content-type'] ?? ''),
        headers: response.headers,
        body,
      });
    });
  });
}

const ZERO = '0001-01-01T00:00:00Z';
/** A set time: RFC3339 UTC as JS `toISOString()` writes it (§7; Java parses only this or no ms). */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const ID = /^[0-9a-f]{24}$/;
/** IronWorker's documented text for a 401. */
const UNAUTHORIZED = 'The OAuth token is either not provided or invalid';
const INT_FIELDS = ['duration', 'timeout', 'run_times', 'percent', 'priority', 'delay'];
const TIME_FIELDS = ['created_at', 'updated_at', 'start_time', 'end_time'];

describe('Kiln through the iron_worker Node client', () => {
  let project: TestProject;
  let client: IronWorkerClient;
  let url: URL;

  /** A client on `target`'s project, pointed at the Kiln under test, the way a user would. */
  const clientFor = (target: TestProject, token = target.token) =>
    new Client({
      token,
      project_id: target.projectId,
      host: url.hostname,
      port: Number(url.port),
      scheme: url.protocol.replace(':', ''),
    });

  beforeAll(async () => {
    url = new URL(e2e().url);
    project = await newProject('iron-client');
    client = clientFor(project);
    await registerCode(project, 'hello');
  });

  afterAll(async () => {
    // Nothing of this project may keep a worker slot: cancel whatever is still waiting.
    if (!client) return;
    const left = await ask((cb) => client.tasksList({ queued: 1, running: 1, preparing: 1 }, cb));
    for (const { id } of left) await ask((cb) => client.tasksCancel(id, cb));
  });

  describe('configuration', () => {
    it('takes host, port, scheme, project_id and token as options and sends `OAuth <token>`', async () => {
      expect(client.api.url()).toBe(`http://${url.hostname}:${url.port}/2/`);
      expect(client.api.options).toMatchObject({ project_id: project.projectId, api_version: 2 });
      expect(client.api.headers()).toMatchObject({
        Authorization: `OAuth ${project.token}`,
        'User-Agent': expect.stringMatching(/^iron_worker_node-0\.1\.8 /),
      });
      // Kiln accepts exactly that request: the project's codes, through the client.
      const codes = await ask((cb) => client.codesList({}, cb));
      expect(codes.map((code: { name: string }) => code.name)).toEqual(['hello']);
    });

    it('a bad token is a 401 whose `{"msg"}` body the client surfaces', async () => {
      const intruder = clientFor(project, 'not-a-token');
      // GET answers are left as text by iron_core, so the Error carries the JSON body itself.
      const onGet = await failure((cb) => intruder.tasksList({}, cb));
      expect(JSON.parse(onGet.message)).toEqual({ msg: UNAUTHORIZED });
      // POST answers are parsed as JSON, so the Error carries `msg`.
      const onPost = await failure((cb) => intruder.tasksCreate('hello', {}, {}, cb));
      expect(onPost.message).toBe(UNAUTHORIZED);
      const status = await raw(intruder.api, 'get', `projects/${project.projectId}/tasks`);
      expect(status.status).toBe(401);
      expect(status.type).toMatch(/^application\/json/);
    });
  });

  describe('codes', () => {
    it('codesList pages, codesGet reads a code with IronWorker types', async () => {
      const lister = await newProject('iron-client-codes');
      const iron = clientFor(lister);
      const first = await registerCode(lister, 'one');
      await registerCode(lister, 'two');
      const all = await ask((cb) => iron.codesList({}, cb));
      expect(all).toHaveLength(2);
      expect(all.map((code: { name: string }) => code.name).sort()).toEqual(['one', 'two']);
      const pageOne = await ask((cb) => iron.codesList({ page: 0, per_page: 1 }, cb));
      const pageTwo = await ask((cb) => iron.codesList({ page: 1, per_page: 1 }, cb));
      expect(pageOne).toHaveLength(1);
      expect(pageTwo).toHaveLength(1);
      expect(pageOne[0].id).not.toBe(pageTwo[0].id);

      const code = await ask((cb) => iron.codesGet(first, cb));
      expect(code).toMatchObject({
        id: first,
        project_id: lister.projectId,
        name: 'one',
        rev: 1,
        image: TEST_IMAGE,
      });
      expect(code.latest_history_id).toMatch(ID);
      expect(code.created_at).toMatch(RFC3339);
      expect(code.latest_change).toMatch(RFC3339);
      expect(all.find((c: { id: string }) => c.id === first)).toEqual(code);
    });

    it('codesRevisions lists revisions newest first; codesDownload returns the zip', async () => {
      const id = await registerCode(project, 'revised', { command: 'sh /kiln/run.sh' });
      expect(await registerCode(project, 'revised', { env_vars: { V: '2' } })).toBe(id);
      const revisions = await ask((cb) => client.codesRevisions(id, {}, cb));
      expect(revisions.map((r: { rev: number }) => r.rev)).toEqual([2, 1]);
      for (const revision of revisions) {
        expect(revision).toMatchObject({
          code_id: id,
          project_id: project.projectId,
          name: 'revised',
        });
        expect(revision.id).toMatch(ID);
        expect(revision.created_at).toMatch(RFC3339);
        expect(revision.updated_at).toMatch(RFC3339);
      }
      expect(revisions[1].command).toBe('sh /kiln/run.sh');
      const paged = await ask((cb) => client.codesRevisions(id, { per_page: 1, page: 1 }, cb));
      expect(paged.map((r: { rev: number }) => r.rev)).toEqual([1]);

      // iron_core keeps the body as a (utf8-decoded) string: a zip starts with "PK\x03\x04".
      const zip = await ask((cb) => client.codesDownload(id, { revision: 1 }, cb));
      expect(typeof zip).toBe('string');
      expect(zip.startsWith('PK\u0003\u0004')).toBe(true);
      expect(zip).toContain('kiln-code.json');
      const latest = await raw(
        client.api,
        'get',
        `projects/${project.projectId}/codes/${id}/download`,
      );
      expect(latest.status).toBe(200);
      expect(latest.type).toBe('application/zip');
      expect(latest.headers['content-disposition']).toBe('filename=revised_2.zip');
      const missing = await failure((cb) => client.codesDownload(id, { revision: 9 }, cb));
      expect(JSON.parse(missing.message).msg).toMatch(/not found/i);
    });

    it('codesDelete answers "Deleted"; the code is gone and its name no longer queues', async () => {
      const id = await registerCode(project, 'doomed');
      expect(await ask((cb) => client.codesDelete(id, cb))).toEqual({ msg: 'Deleted' });
      const gone = await failure((cb) => client.codesGet(id, cb));
      expect(JSON.parse(gone.message)).toEqual({ msg: 'Code not found' });
      const orphan = await failure((cb) => client.tasksCreate('doomed', {}, {}, cb));
      expect(orphan.message).toMatch(/not found/i);
      const again = await registerCode(project, 'doomed');
      expect(again).not.toBe(id);
    });

    it('the multipart upload answers {id, msg: "Upload successful."}; a new upload is a revision', async () => {
      const upload = (data: Record<string, unknown>) =>
        ask((cb) => client.api.codesUpload({ data: JSON.stringify(data) }, cb));
      const first = await upload({
        name: 'uploaded',
        image: TEST_IMAGE,
        content_type: 'text/plain',
      });
      expect(first).toEqual({ id: expect.stringMatching(ID), msg: 'Upload successful.' });
      const second = await upload({
        name: 'uploaded',
        image: TEST_IMAGE,
        command: 'sh /kiln/run.sh',
      });
      expect(second).toEqual({ id: first.id, msg: 'Upload successful.' });
      expect(await ask((cb) => client.codesGet(first.id, cb))).toMatchObject({
        name: 'uploaded',
        rev: 2,
        command: 'sh /kiln/run.sh',
      });
    });

    it("codesUpload's zip package runs on the default stack: tasksCreate completes with the script's output", async () => {
      // The client zips `./upload_files/__runner__.sh` (shipped in the package, copied relative
      // to the cwd) plus "\nnode <fileName>" with adm-zip 0.4.4, which throws on Node >= 10 when
      // a CRC-32 is >= 2^31 (it writes it with writeInt32LE). Pick a file name whose runner
      // zips, so the request reaches Kiln.
      const runner = readFileSync(join(IRON_WORKER_DIR, 'upload_files', '__runner__.sh'));
      // The script is zipped too, so its CRC-32 must stay under 2^31 as well.
      const script = (n: number) =>
        `// ${n}\nconst fs = require('node:fs');\n` +
        "console.log('node zip says', fs.readFileSync(process.env.PAYLOAD_FILE, 'utf8'));\n";
      const n = [...Array(64).keys()].find(
        (i) =>
          crc32(Buffer.concat([runner, Buffer.from(`\nnode hello-${i}.js`)])) < 2 ** 31 &&
          crc32(Buffer.from(script(i))) < 2 ** 31,
      );
      expect(n).toBeDefined();
      const fileName = `hello-${n}.js`;
      const destination = mkdtempSync(join(tmpdir(), 'kiln-iron-upload-'));
      writeFileSync(join(destination, fileName), script(n!));
      const home = process.cwd();
      try {
        // ncp resolves `upload_files` against the cwd synchronously, as the call starts.
        process.chdir(IRON_WORKER_DIR);
        const pending = ask((cb) => client.codesUpload('zipped', destination, fileName, cb));
        process.chdir(home);
        const uploaded = await pending;
        expect(uploaded).toMatchObject({ msg: 'Upload successful.' });
        const code = await ask((cb) => client.codesGet(uploaded.id, cb));
        expect(code).toMatchObject({ name: 'zipped', command: 'sh __runner__.sh' });
        expect(code.latest_checksum).toMatch(/^[0-9a-f]{64}$/);
        const { id } = await ask((cb) => client.tasksCreate('zipped', 'from iron', {}, cb));
        const done = await ask((cb) => client.tasksWaitFor(id, {}, cb));
        expect(done).toMatchObject({ id, status: 'complete' });
        expect(await ask((cb) => client.tasksLog(id, cb))).toContain('node zip says from iron');
      } finally {
        process.chdir(home);
        rmSync(destination, { recursive: true, force: true });
      }
    });
  });

  describe('creating and reading tasks', () => {
    it('tasksCreate forwards priority, timeout, delay, cluster and label; tasksGet types', async () => {
      await grantCluster(project, 'iron-client');
      const created = await ask((cb) =>
        client.tasksCreate(
          'hello',
          { greeting: 'hi' },
          { priority: 2, timeout: 30, delay: 3600, cluster: 'iron-client', label: 'node' },
          cb,
        ),
      );
      expect(created).toEqual({ id: expect.stringMatching(ID) });
      const task = await ask((cb) => client.tasksGet(created.id, cb));
      expect(task).toMatchObject({
        id: created.id,
        project_id: project.projectId,
        code_name: 'hello',
        code_rev: '1',
        status: 'queued',
        payload: '{"greeting":"hi"}',
        priority: 2,
        timeout: 30,
        delay: 3600,
        cluster: 'iron-client',
        label: 'node',
        start_time: ZERO,
        end_time: ZERO,
        duration: 0,
        run_times: 0,
        percent: 0,
        msg: '',
      });
      for (const field of ['code_id', 'code_history_id']) expect(task[field]).toMatch(ID);
      for (const field of ['created_at', 'updated_at']) expect(task[field]).toMatch(RFC3339);
      expect(await ask((cb) => client.tasksCancel(created.id, cb))).toEqual({ msg: 'Cancelled' });
      expect(await ask((cb) => client.tasksGet(created.id, cb))).toMatchObject({
        status: 'cancelled',
        start_time: ZERO,
      });
    });

    it('a string payload is sent as is; unset options take the defaults', async () => {
      const { id } = await ask((cb) => client.tasksCreate('hello', 'plain text', {}, cb));
      const task = await ask((cb) => client.tasksWaitFor(id, {}, cb));
      expect(task).toMatchObject({
        status: 'complete',
        payload: 'plain text',
        priority: 0,
        timeout: 3600,
        delay: 0,
        cluster: 'default',
        label: '',
      });
      expect(await ask((cb) => client.tasksLog(id, cb))).toBe('plain text\n');
    });

    it('bulk create answers "Queued up" with the ids in request order', async () => {
      const tasks = [1, 2, 3].map((n) => ({
        codeName: 'hello',
        payload: { n },
        options: { label: `bulk-${n}`, delay: 3600 },
      }));
      const answer = await ask((cb) => client.api.tasksCreate(tasks, cb));
      expect(answer.msg).toBe('Queued up');
      expect(answer.tasks).toHaveLength(3);
      for (const [index, { id }] of (answer.tasks as { id: string }[]).entries()) {
        expect(id).toMatch(ID);
        expect(await ask((cb) => client.tasksGet(id, cb))).toMatchObject({
          payload: `{"n":${index + 1}}`,
          label: `bulk-${index + 1}`,
        });
      }
      // The client's own tasksCreateBulk queues them all but hands back only the first id.
      const first = await ask((cb) => client.tasksCreateBulk(tasks, cb));
      expect(first).toEqual({ id: expect.stringMatching(ID) });
      const labelled = await ask((cb) => client.tasksList({ label: 'bulk-3', queued: 1 }, cb));
      expect(labelled).toHaveLength(2);
      expect(labelled[1].id).toBe(answer.tasks[2].id);
      // One bad task rejects the whole request: nothing of it is queued.
      const invalid = [
        { codeName: 'hello', payload: {}, options: { label: 'half-bulk', delay: 3600 } },
        { codeName: 'no-such-code', payload: {}, options: { label: 'half-bulk' } },
      ];
      const refused = await failure((cb) => client.api.tasksCreate(invalid, cb));
      expect(refused.message).toBe('Code "no-such-code" not found');
      expect(await ask((cb) => client.tasksList({ label: 'half-bulk' }, cb))).toEqual([]);
      for (const { id } of await ask((cb) => client.tasksList({ queued: 1 }, cb))) {
        await ask((cb) => client.tasksCancel(id, cb));
      }
    });

    it('tasksWaitFor returns the finished task with every field typed as IronWorker does', async () => {
      const { id } = await ask((cb) => client.tasksCreate('hello', {}, {}, cb));
      const done = await ask((cb) => client.tasksWaitFor(id, {}, cb));
      expect(done).toMatchObject({ id, status: 'complete', msg: '', run_times: 1, percent: 0 });
      expect(typeof done.code_rev).toBe('string');
      for (const field of INT_FIELDS) expect(Number.isInteger(done[field])).toBe(true);
      for (const field of TIME_FIELDS) expect(done[field]).toMatch(RFC3339);
      expect(done.start_time).not.toBe(ZERO);
      expect(done.end_time).not.toBe(ZERO);
      const span = Date.parse(done.end_time) - Date.parse(done.start_time);
      expect(Math.abs(done.duration - span)).toBeLessThanOrEqual(1000);
      expect(await ask((cb) => client.tasksGet(id, cb))).toEqual(done);
    });

    it('a failing task ends `error` with its exit code in msg', async () => {
      const { id } = await ask((cb) => client.tasksCreate('hello', { exit: 3 }, {}, cb));
      const done = await ask((cb) => client.tasksWaitFor(id, {}, cb));
      expect(done).toMatchObject({ status: 'error', msg: 'exit code 3', run_times: 1 });
      expect(done.end_time).toMatch(RFC3339);
    });

    it('an unknown task is a 404 whose body the client surfaces', async () => {
      const missing = await failure((cb) => client.tasksGet('a'.repeat(24), cb));
      expect(JSON.parse(missing.message)).toEqual({ msg: 'Task not found' });
      const status = await raw(
        client.api,
        'get',
        `projects/${project.projectId}/tasks/${'a'.repeat(24)}`,
      );
      expect(status).toMatchObject({
        status: 404,
        type: expect.stringMatching(/^application\/json/),
      });
    });
  });

  describe('listing tasks', () => {
    it('tasksList passes status flags, code_name, label, cluster, times and paging', async () => {
      const lister = await newProject('iron-client-list');
      const iron = clientFor(lister);
      await registerCode(lister, 'a');
      await registerCode(lister, 'b');
      await grantCluster(lister, 'elsewhere');
      const ok = (await ask((cb) => iron.tasksCreate('a', {}, { label: 'x' }, cb))).id;
      const failed = (await ask((cb) => iron.tasksCreate('b', { exit: 1 }, {}, cb))).id;
      const waiting = (
        await ask((cb) => iron.tasksCreate('a', {}, { delay: 3600, cluster: 'elsewhere' }, cb))
      ).id;
      await ask((cb) => iron.tasksWaitFor(ok, {}, cb));
      await ask((cb) => iron.tasksWaitFor(failed, {}, cb));
      const list = async (options: Record<string, unknown>) =>
        (await ask((cb) => iron.tasksList(options, cb))).map((t: { id: string }) => t.id);
      expect(await list({})).toEqual([waiting, failed, ok]);
      expect(await list({ complete: 1 })).toEqual([ok]);
      expect(await list({ complete: 1, error: 1 })).toEqual([failed, ok]);
      expect(await list({ queued: true })).toEqual([waiting]);
      expect(await list({ code_name: 'a' })).toEqual([waiting, ok]);
      expect(await list({ label: 'x' })).toEqual([ok]);
      expect(await list({ cluster: 'elsewhere' })).toEqual([waiting]);
      expect(await list({ killed: 1, timeout: 1, cancelled: 1 })).toEqual([]);
      expect(await list({ page: 1, per_page: 1 })).toEqual([failed]);
      const now = Math.floor(Date.now() / 1000);
      expect(await list({ from_time: now + 60 })).toEqual([]);
      expect(await list({ from_time: now - 600, to_time: now + 60 })).toHaveLength(3);
      const listed = await ask((cb) => iron.tasksList({ complete: 1 }, cb));
      expect(listed[0]).toEqual(await ask((cb) => iron.tasksGet(ok, cb)));
      const tooMany = await failure((cb) => iron.tasksList({ per_page: 101 }, cb));
      expect(JSON.parse(tooMany.message).msg).toMatch(/per_page/);
      await ask((cb) => iron.tasksCancel(waiting, cb));
    });
  });

  describe('logs', () => {
    it('tasksLog fails with an error naming the log until the task has started', async () => {
      const { id } = await ask((cb) => client.tasksCreate('hello', {}, { delay: 3600 }, cb));
      const early = await failure((cb) => client.tasksLog(id, cb));
      // tasksWaitForLog retries exactly when the error message matches /log/i.
      expect(early.message).toMatch(/log/i);
      expect(JSON.parse(early.message)).toEqual({ msg: expect.stringMatching(/^Log not found/) });
      const status = await raw(client.api, 'get', `projects/${project.projectId}/tasks/${id}/log`);
      expect(status.status).toBe(404);
      await ask((cb) => client.tasksCancel(id, cb));
    });

    it('tasksLog returns STDOUT and STDERR as text/plain; tasksStdout STDOUT alone', async () => {
      const { id } = await ask((cb) => client.tasksCreate('hello', { stderr: 'oops' }, {}, cb));
      await ask((cb) => client.tasksWaitFor(id, {}, cb));
      const log: string = await ask((cb) => client.tasksLog(id, cb));
      expectStderrInterleaved(log, '{"stderr":"oops"}\n', 'oops\n');
      expect(await ask((cb) => client.tasksStdout(id, cb))).toBe('{"stderr":"oops"}\n');
      const base = `projects/${project.projectId}/tasks/${id}`;
      for (const path of [`${base}/log`, `${base}/outlog`]) {
        const answer = await raw(client.api, 'get', path);
        expect(answer.status).toBe(200);
        expect(answer.type).toMatch(/^text\/plain/);
      }
    });

    it('tasksWaitForLog waits through the 404s until the task has a log', async () => {
      const { id } = await ask((cb) =>
        client.tasksCreate('hello', { lines: 3, interval: 0.2 }, { delay: 1 }, cb),
      );
      expect((await getTask(project, id)).status).toBe('queued');
      const log = await ask((cb) => client.tasksWaitForLog(id, {}, cb));
      expect(typeof log).toBe('string');
      expect(['queued', 'preparing']).not.toContain((await getTask(project, id)).status);
      await waitForTask(project, id);
      const full = '{"lines":3,"interval":0.2}\nline 1\nline 2\nline 3\n';
      expect(full.startsWith(log)).toBe(true);
      expect(await ask((cb) => client.tasksLog(id, cb))).toBe(full);
    });

    it('tasksRun queues a sync task, waits for it and returns its STDOUT alone', async () => {
      const out = await ask((cb) =>
        client.tasksRun('hello', { lines: 2, stderr: 'not in stdout' }, { label: 'run' }, cb),
      );
      expect(out).toBe('{"lines":2,"stderr":"not in stdout"}\nline 1\nline 2\n');
      const [task] = await ask((cb) => client.tasksList({ label: 'run' }, cb));
      expect(task).toMatchObject({ status: 'complete', msg: '', code_name: 'hello' });
    });
  });

  describe('cancel, retry, progress', () => {
    it('tasksCancel stops a running task: "Cancelled", status `cancelled`', async () => {
      const { id } = await ask((cb) => client.tasksCreate('hello', { sleep: 60 }, {}, cb));
      await waitForTask(project, id, (task) => task.status === 'running');
      expect(await ask((cb) => client.tasksCancel(id, cb))).toEqual({ msg: 'Cancelled' });
      const done = await ask((cb) => client.tasksWaitFor(id, {}, cb));
      expect(done.status).toBe('cancelled');
      expect(done.end_time).toMatch(RFC3339);
    });

    it('tasksCancel of a finished task answers "Cancelled" and changes nothing', async () => {
      const { id } = await ask((cb) => client.tasksCreate('hello', {}, {}, cb));
      const done = await ask((cb) => client.tasksWaitFor(id, {}, cb));
      expect(await ask((cb) => client.tasksCancel(id, cb))).toEqual({ msg: 'Cancelled' });
      expect(await ask((cb) => client.tasksGet(id, cb))).toEqual(done);
    });

    it('tasksCancelAll cancels the unfinished tasks of one code, by code id', async () => {
      const codeId = await registerCode(project, 'bulk-cancel');
      const mine = [
        await queueTask(project, { code_name: 'bulk-cancel', payload: '{}', delay: 3600 }),
        await queueTask(project, { code_name: 'bulk-cancel', payload: '{}', delay: 3600 }),
      ];
      const other = await queueTask(project, { code_name: 'hello', payload: '{}', delay: 3600 });
      const answer = await ask((cb) => client.tasksCancelAll(codeId, cb));
      expect(answer.msg).toBe('Cancelled');
      for (const id of mine) expect((await getTask(project, id)).status).toBe('cancelled');
      expect((await getTask(project, other)).status).toBe('queued');
      await ask((cb) => client.tasksCancel(other, cb));
    });

    it('tasksRetry answers "Queued up" with a new task linked to the original', async () => {
      const { id } = await ask((cb) => client.tasksCreate('hello', { exit: 2 }, {}, cb));
      await ask((cb) => client.tasksWaitFor(id, {}, cb));
      const answer = await ask((cb) => client.tasksRetry(id, 0, cb));
      expect(answer).toEqual({ msg: 'Queued up', tasks: [{ id: expect.stringMatching(ID) }] });
      const retryId = answer.tasks[0].id;
      expect(retryId).not.toBe(id);
      const retried = await ask((cb) => client.tasksWaitFor(retryId, {}, cb));
      expect(retried).toMatchObject({
        status: 'error',
        original_task_id: id,
        payload: '{"exit":2}',
        msg: 'exit code 2',
      });
      expect((await ask((cb) => client.tasksGet(id, cb))).retry_task_id).toBe(retryId);
      // The delay is optional: the client then posts `{}`.
      const delayed = await ask((cb) => client.tasksRetry(retryId, undefined, cb));
      expect(delayed.msg).toBe('Queued up');
      const unknown = await failure((cb) => client.tasksRetry('b'.repeat(24), 0, cb));
      expect(unknown.message).toBe('Task not found');
    });

    it('tasksSetProgress answers "Progress set"; tasksGet shows percent and msg', async () => {
      const { id } = await ask((cb) => client.tasksCreate('hello', { sleep: 3 }, {}, cb));
      await waitForTask(project, id, (task) => task.status === 'running');
      const answer = await ask((cb) =>
        client.tasksSetProgress(id, { percent: 42, msg: 'half way' }, cb),
      );
      expect(answer).toEqual({ msg: 'Progress set' });
      expect(await ask((cb) => client.tasksGet(id, cb))).toMatchObject({
        percent: 42,
        msg: 'half way',
      });
      const bad = await failure((cb) => client.tasksSetProgress(id, { percent: 101 }, cb));
      expect(bad.message).toMatch(/percent must be at most 100/);
      const done = await ask((cb) => client.tasksWaitFor(id, {}, cb));
      expect(done).toMatchObject({ status: 'complete', percent: 42 });
    });
  });

  describe('HTTP conventions the client relies on', () => {
    it('every successful GET, POST and DELETE is a 200 with Content-Type application/json (no gzip)', async () => {
      const codeId = await registerCode(project, 'conventions');
      const taskId = await queueTask(project, { code_name: 'conventions', payload: '{}' });
      await waitForTask(project, taskId);
      const base = `projects/${project.projectId}`;
      const gets = [
        `${base}/codes`,
        `${base}/codes/${codeId}`,
        `${base}/codes/${codeId}/revisions`,
        `${base}/tasks`,
        `${base}/tasks/${taskId}`,
      ];
      for (const path of gets) {
        const answer = await raw(client.api, 'get', path);
        expect({ path, status: answer.status, type: answer.type }).toEqual({
          path,
          status: 200,
          type: expect.stringMatching(/^application\/json/),
        });
        expect(answer.headers['content-encoding']).toBeUndefined();
        expect(() => JSON.parse(answer.body)).not.toThrow();
      }
      const posts: [string, Record<string, unknown>, string][] = [
        [`${base}/tasks/${taskId}/progress`, { percent: 100 }, 'Progress set'],
        [`${base}/tasks/${taskId}/cancel`, {}, 'Cancelled'],
        [`${base}/tasks/${taskId}/retry`, { delay: 3600 }, 'Queued up'],
        [`${base}/codes/${codeId}/cancel_all`, {}, 'Cancelled'],
      ];
      for (const [path, params, msg] of posts) {
        const answer = await raw(client.api, 'post', path, params);
        expect({ path, status: answer.status, msg: answer.body.msg }).toEqual({
          path,
          status: 200,
          msg,
        });
        expect(answer.type).toMatch(/^application\/json/);
      }
      const deleted = await raw(client.api, 'delete', `${base}/codes/${codeId}`);
      expect(deleted).toMatchObject({ status: 200, body: { msg: 'Deleted' } });
      expect(deleted.type).toMatch(/^application\/json/);
    });
  });
});
