import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TEST_IMAGE } from './images';
import { KILN_HOME, sleep } from './processes';

export { TEST_IMAGE };

export interface E2eEnv {
  url: string;
  adminToken: string;
  env: Record<string, string>;
  workerHealthUrl: string;
}

export function e2e(): E2eEnv {
  return JSON.parse(readFileSync(join(KILN_HOME, 'e2e.json'), 'utf8')) as E2eEnv;
}

export interface Answer<T = any> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

export interface RequestOptions {
  /** The Kiln to call; default the shared one of the suite. */
  url?: string;
  token?: string;
  /** How the token is sent; default the IronWorker header `Authorization: OAuth <token>`. */
  auth?: 'oauth' | 'bearer' | 'query' | 'none';
  json?: unknown;
  body?: string | Buffer | FormData;
  headers?: Record<string, string>;
}

/**
 * One HTTP call to the Kiln under test; JSON answers are parsed, others kept as text. A JSON answer
 * the API's OpenAPI document does not allow (its schema for the method, path and status) throws,
 * naming what differs: the suites keep the document true.
 */
export async function call(
  method: string,
  path: string,
  options: RequestOptions = {},
): Promise<Answer> {
  const url = options.url ?? e2e().url;
  const headers: Record<string, string> = { ...options.headers };
  let target = `${url}${path}`;
  const auth = options.auth ?? 'oauth';
  if (options.token && auth === 'oauth') headers.authorization = `OAuth ${options.token}`;
  if (options.token && auth === 'bearer') headers.authorization = `Bearer ${options.token}`;
  if (options.token && auth === 'query') {
    target += `${target.includes('?') ? '&' : '?'}oauth=${encodeURIComponent(options.token)}`;
  }
  let body: string | Buffer | FormData | undefined = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(target, { method, headers, body: body as RequestInit['body'] });
  const text = await res.text();
  let parsed: unknown = text;
  if ((res.headers.get('content-type') ?? '').includes('application/json')) {
    parsed = JSON.parse(text);
    // Loaded on first use: global-teardown imports this module outside Jest's `@kiln/*` mapping,
    // which the document's schemas need.
    const { answerProblem } = await import('./answer-check');
    const problem = answerProblem(method, path, res.status, parsed);
    if (problem) throw new Error(`Answer not as the OpenAPI document says: ${problem}`);
  }
  return { status: res.status, body: parsed, text, headers: res.headers };
}

export interface TestProject {
  projectId: string;
  token: string;
  /** The Kiln the project lives on (a suite's own stack); default the shared one. */
  url?: string;
}

/** A project of its own for each test file, so tests never see each other's codes and tasks. */
export async function newProject(name = 'e2e'): Promise<TestProject> {
  const { adminToken } = e2e();
  const created = await call('POST', '/2/projects', { token: adminToken, json: { name } });
  if (created.status !== 200) {
    throw new Error(`project not created: ${created.status} ${created.text}`);
  }
  const issued = await call('POST', `/2/projects/${created.body.id}/tokens`, {
    token: adminToken,
    json: {},
  });
  if (issued.status !== 200) throw new Error(`token not issued: ${issued.status} ${issued.text}`);
  return { projectId: created.body.id, token: issued.body.token };
}

/** Lets the project queue to `cluster`, as the operator does (`default` needs no grant). */
export async function grantCluster(project: TestProject, cluster: string): Promise<void> {
  const res = await call(
    'PUT',
    `/2/projects/${project.projectId}/clusters/${encodeURIComponent(cluster)}`,
    { token: e2e().adminToken },
  );
  if (res.status !== 200) throw new Error(`cluster not granted: ${res.status} ${res.text}`);
}

export async function registerCode(
  project: TestProject,
  name: string,
  settings: Record<string, unknown> = {},
): Promise<string> {
  const res = await call('POST', `/2/projects/${project.projectId}/codes`, {
    url: project.url,
    token: project.token,
    json: { name, image: TEST_IMAGE, ...settings },
  });
  if (res.status !== 200) throw new Error(`code not registered: ${res.status} ${res.text}`);
  return res.body.id as string;
}

export async function queueTask(
  project: TestProject,
  task: Record<string, unknown>,
): Promise<string> {
  const res = await call('POST', `/2/projects/${project.projectId}/tasks`, {
    url: project.url,
    token: project.token,
    json: { tasks: [task] },
  });
  if (res.status !== 200) throw new Error(`task not queued: ${res.status} ${res.text}`);
  return res.body.tasks[0].id as string;
}

export async function getTask(project: TestProject, id: string): Promise<any> {
  const res = await call('GET', `/2/projects/${project.projectId}/tasks/${id}`, {
    url: project.url,
    token: project.token,
  });
  if (res.status !== 200) throw new Error(`task not read: ${res.status} ${res.text}`);
  return res.body;
}

/** The statuses a task ends in. */
export const FINAL_STATUSES = ['complete', 'error', 'cancelled', 'killed', 'timeout'];

/** Polls a task until it reaches a final status (or `until` holds); resolves with it. */
export async function waitForTask(
  project: TestProject,
  id: string,
  until: (task: any) => boolean = (task) => FINAL_STATUSES.includes(task.status),
  timeoutMs = 90_000,
): Promise<any> {
  let task: any;
  await waitUntil(`task ${id}`, async () => until((task = await getTask(project, id))), {
    timeoutMs,
    state: () => `it is ${task.status}`,
  });
  return task;
}

export async function taskLog(project: TestProject, id: string): Promise<Answer<string>> {
  return call('GET', `/2/projects/${project.projectId}/tasks/${id}/log`, {
    url: project.url,
    token: project.token,
  });
}

export interface WaitOptions {
  /** How long to wait at most; default 60 s. */
  timeoutMs?: number;
  /** How long to sleep between checks; default 100 ms. */
  intervalMs?: number;
  /** How things stand, for the error on timeout. */
  state?: () => string | Promise<string>;
}

/** A subscription's endpoint fields while nothing has failed or waits (GET …/webhooks/{id}). */
export const HEALTHY_ENDPOINT = {
  circuit: 'closed',
  failures: 0,
  next_probe_at: null,
  last_error: null,
  pending: 0,
  dropped: 0,
};

/**
 * The one polling loop of the tests: resolves once `check` is true, checking every `intervalMs`;
 * throws after `timeoutMs`, saying `what` was awaited and, from `state`, how things stood. What
 * the last check saw, `check` leaves in a variable of the caller's.
 */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  { timeoutMs = 60_000, intervalMs = 100, state }: WaitOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      const seen = state ? `; ${await state()}` : '';
      throw new Error(`waited ${timeoutMs} ms for ${what}${seen}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * STDOUT and STDERR reach Docker through two pipes read independently, so one `stderr` write can
 * land anywhere inside the STDOUT text, even mid-line: the log must be `stdout` with `stderr`
 * inserted at some point.
 */
export function expectStderrInterleaved(log: string, stdout: string, stderr: string): void {
  const witnesses: number[] = [];
  for (let at = log.indexOf(stderr); at >= 0; at = log.indexOf(stderr, at + 1)) {
    if (log.slice(0, at) + log.slice(at + stderr.length) === stdout) witnesses.push(at);
  }
  expect({ log, interleaved: witnesses.length > 0 }).toEqual({ log, interleaved: true });
}
