import { ApiError, api, canAct, projectPath } from '../api';
import { actionButton } from './common';
import { Child, errorBox, fill, h, showError, time } from '../dom';
import { PageContext, navigate, projectHref } from '../router';
import type { Task } from './tasks';

/** Payloads longer than this are offered as a download instead of rendered. */
export const PAYLOAD_RENDER_MAX = 64 * 1024;
const FINAL = ['complete', 'error', 'timeout', 'killed', 'cancelled'];
/** How often an open task that has not ended re-reads its status and progress. */
const STATE_POLL_MS = 2000;

/** The payload pretty-printed when it is JSON, as it is otherwise. */
function pretty(payload: string): string {
  try {
    return JSON.stringify(JSON.parse(payload), null, 2);
  } catch {
    return payload;
  }
}

function payloadView(task: Task): Child {
  const payload = task.payload ?? '';
  if (payload.length > PAYLOAD_RENDER_MAX) {
    const url = URL.createObjectURL(new Blob([payload], { type: 'application/octet-stream' }));
    return h(
      'p',
      { class: 'notice' },
      `The payload is ${(payload.length / 1024).toFixed(0)} KB, too large to show here. `,
      h('a', { href: url, download: `${task.id}-payload.json` }, 'Download the payload'),
    );
  }
  return h('pre', { class: 'payload', tabindex: 0, 'aria-label': 'Payload' }, pretty(payload));
}

/**
 * A task: every field, the payload, the log following live (the SSE form of
 * `GET …/log?follow=1`, which ends with the task), and with a token that may act: cancel, retry,
 * and "run again with this payload edited" (a new task of the same code with the original's
 * options).
 */
export async function taskPage(ctx: PageContext): Promise<void> {
  const id = ctx.params[0];
  const path = projectPath(ctx.projectId, `tasks/${encodeURIComponent(id)}`);
  const task = await api<Task>('GET', path);
  const reload = () => navigate(location.pathname, true);
  const error = errorBox();
  const fields = Object.entries(task).filter(([name]) => name !== 'payload');
  const log = h('pre', { class: 'log', tabindex: 0, 'aria-label': 'Log', 'aria-live': 'off' });
  const logState = h('p', { class: 'help', role: 'status' }, 'Following the log…');
  const stateLine = h('p', {});
  showState(stateLine, task);
  const tasksHref = projectHref(ctx.projectId, 'tasks');
  fill(
    ctx.main,
    h('p', {}, h('a', { href: tasksHref }, '← Tasks')),
    h('h1', {}, 'Task ', h('span', { class: 'mono' }, task.id)),
    stateLine,
    canAct()
      ? h(
          'div',
          { class: 'actions' },
          FINAL.includes(task.status)
            ? null
            : actionButton('Cancel', error, async () => {
                await api('POST', `${path}/cancel`);
                reload();
              }),
          FINAL.includes(task.status)
            ? actionButton('Retry', error, async () => {
                const { tasks } = await api<{ tasks: { id: string }[] }>(
                  'POST',
                  `${path}/retry`,
                  {},
                );
                navigate(projectHref(ctx.projectId, `tasks/${tasks[0].id}`));
              })
            : null,
        )
      : null,
    error,
    h('h2', {}, 'Fields'),
    h(
      'dl',
      { class: 'fields' },
      fields.map(([name, value]) => [
        h('dt', {}, name),
        h(
          'dd',
          {},
          name.endsWith('_time') || name.endsWith('_at')
            ? `${time(fieldText(value))} (${fieldText(value)})`
            : fieldText(value),
        ),
      ]),
    ),
    h('h2', {}, 'Payload'),
    payloadView(task),
    canAct() ? rerunForm(ctx, task) : null,
    h('h2', {}, 'Log'),
    logState,
    log,
  );
  followLog(ctx, path, log, logState);
  if (!FINAL.includes(task.status)) watchState(ctx, path, stateLine);
}

/** The status and progress (`percent`, set by the task through `POST …/progress`). */
function showState(line: HTMLElement, task: Task): void {
  const percent = typeof task.percent === 'number' ? task.percent : null;
  fill(
    line,
    h('span', { class: `badge s-${task.status}` }, task.status),
    ' ',
    percent !== null
      ? h('progress', { max: 100, value: percent, 'aria-label': 'Progress' }, `${percent} %`)
      : null,
    percent !== null ? ` ${percent} %` : null,
  );
}

/** Re-reads the task's status and progress every few seconds until it ends or the page is left. */
function watchState(ctx: PageContext, path: string, line: HTMLElement): void {
  const timer = setInterval(() => {
    api<Task>('GET', path).then(
      (now) => {
        showState(line, now);
        if (FINAL.includes(now.status)) clearInterval(timer);
      },
      () => clearInterval(timer),
    );
  }, STATE_POLL_MS);
  ctx.onLeave(() => clearInterval(timer));
}

function fieldText(value: unknown): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

/** Streams the log into `log` until the task ends or the page is left. */
function followLog(ctx: PageContext, path: string, log: HTMLElement, state: HTMLElement): void {
  const source = new EventSource(`${path}/log?follow=1`);
  ctx.onLeave(() => source.close());
  source.onmessage = (event: MessageEvent<string>) => {
    log.append(JSON.parse(event.data) as string);
  };
  source.addEventListener('end', (event) => {
    source.close();
    const { status } = JSON.parse((event as MessageEvent<string>).data) as { status: string };
    state.textContent = `The task ended: ${status}.`;
  });
  source.onerror = () => {
    // EventSource retries by itself; say so rather than fail silently.
    if (source.readyState === EventSource.CLOSED) state.textContent = 'The log stream was closed.';
    else state.textContent = 'The log stream was interrupted; reconnecting…';
  };
}

/** "Run again with this payload edited": the same code and options, a new payload. */
function rerunForm(ctx: PageContext, task: Task): HTMLElement | null {
  if ((task.payload ?? '').length > PAYLOAD_RENDER_MAX) return null;
  const error = errorBox();
  const area = h('textarea', {
    id: 'rerun-payload',
    rows: 8,
    spellcheck: 'false',
  }) as HTMLTextAreaElement;
  area.value = pretty(task.payload ?? '');
  return h(
    'form',
    {
      class: 'rerun',
      onsubmit: (event: Event) => {
        event.preventDefault();
        showError(error, null);
        const options: Record<string, unknown> = {
          code_name: task.code_name,
          payload: area.value,
          priority: task.priority,
          timeout: task.timeout,
          cluster: task.cluster,
        };
        if (task.label) options.label = task.label;
        api<{ tasks: { id: string }[] }>('POST', projectPath(ctx.projectId, 'tasks'), {
          tasks: [options],
        }).then(
          ({ tasks }) => navigate(projectHref(ctx.projectId, `tasks/${tasks[0].id}`)),
          (e: unknown) => showError(error, e instanceof ApiError ? e.message : String(e)),
        );
      },
    },
    h('h2', {}, 'Run again'),
    h(
      'label',
      { for: 'rerun-payload' },
      'Payload for a new task of this code, with the same options',
    ),
    area,
    error,
    h('button', { type: 'submit' }, 'Run again with this payload'),
  );
}
