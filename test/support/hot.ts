import { NODE_HOT_IMAGE } from './images';
import { FINAL_STATUSES, waitUntil } from './kiln';
import { OwnStack } from './own-stack';

/** The locally built `@kiln/fdk` test image (scripts/build-hot-test-images.sh). */
export const NODE_HOT = NODE_HOT_IMAGE;

export interface HotProject {
  id: string;
  token: string;
}

/** What the hot suites do as a project of their stack: call it, queue tasks, wait, read logs. */
export function hotCalls(stack: OwnStack) {
  const as = (project: HotProject, method: string, path: string, json?: unknown) =>
    stack.request(method, `/2/projects/${project.id}${path}`, json, project.token);

  /** Queues one task of `code` per payload (each with `extra`); their ids. */
  async function queue(project: HotProject, code: string, payloads: object[], extra: object = {}) {
    const res = await as(project, 'POST', '/tasks', {
      tasks: payloads.map((payload) => ({
        code_name: code,
        payload: JSON.stringify(payload),
        ...extra,
      })),
    });
    expect(res).toMatchObject({ status: 200 });
    return (res.body.tasks as { id: string }[]).map((task) => task.id);
  }

  /** Polls a task until it has a final status; the task. */
  async function finished(project: HotProject, id: string, timeoutMs = 90_000) {
    let seen: any;
    await waitUntil(
      `task ${id} finished`,
      async () =>
        FINAL_STATUSES.includes((seen = (await as(project, 'GET', `/tasks/${id}`)).body).status),
      { timeoutMs, intervalMs: 100, state: () => `it is ${seen?.status}: ${seen?.msg}` },
    );
    return seen;
  }

  const log = async (project: HotProject, id: string) =>
    (await as(project, 'GET', `/tasks/${id}/log`)).body as string;

  return { as, queue, finished, log };
}
