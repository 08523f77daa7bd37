import { ApiError, api, canAct, projectPath } from '../api';
import { errorBox, h, showError, time, fill } from '../dom';
import { PageContext, navigate, projectHref } from '../router';

export interface Task {
  id: string;
  code_name: string;
  status: string;
  label?: string | null;
  cluster?: string;
  created_at: string;
  duration?: number;
  payload?: string;
  [field: string]: unknown;
}

const STATUSES = [
  'queued',
  'preparing',
  'running',
  'complete',
  'error',
  'timeout',
  'killed',
  'cancelled',
];
const PER_PAGE = 30;
/** What the last bulk action did, said once on the list it re-renders. */
let flash: string | null = null;
/** The filters kept in the page's URL, by their name there. */
const FILTERS = ['code', 'status', 'label', 'cluster', 'from', 'to'] as const;

/** `GET tasks`'s query for the page's URL query (the dashboard's names → the API's). */
function apiQuery(query: URLSearchParams): URLSearchParams {
  const out = new URLSearchParams({ per_page: String(PER_PAGE) });
  const set = (name: string, value: string | null) => {
    if (value) out.set(name, value);
  };
  set('code_name', query.get('code'));
  set('label', query.get('label'));
  set('cluster', query.get('cluster'));
  const status = query.get('status');
  if (status && STATUSES.includes(status)) out.set(status, '1');
  for (const [name, param] of [
    ['from', 'from_time'],
    ['to', 'to_time'],
  ]) {
    const value = query.get(name);
    const ms = value ? new Date(value).getTime() : NaN;
    if (!Number.isNaN(ms)) out.set(param, String(Math.floor(ms / 1000)));
  }
  const page = Number(query.get('page') ?? '0');
  if (Number.isInteger(page) && page > 0) out.set('page', String(page));
  return out;
}

function filterForm(ctx: PageContext): HTMLElement {
  const field = (name: string, label: string, input: HTMLElement) =>
    h('div', { class: 'field' }, h('label', { for: `f-${name}` }, label), input);
  const text = (name: string, type = 'text') =>
    h('input', { id: `f-${name}`, name, type, value: ctx.query.get(name) ?? '' });
  const status = h(
    'select',
    { id: 'f-status', name: 'status' },
    h('option', { value: '' }, 'any'),
    STATUSES.map((s) => h('option', { value: s, selected: ctx.query.get('status') === s }, s)),
  );
  return h(
    'form',
    {
      class: 'filters',
      role: 'search',
      'aria-label': 'Filter tasks',
      onsubmit: (event: Event) => {
        event.preventDefault();
        const data = new FormData(event.target as HTMLFormElement);
        const query = new URLSearchParams();
        for (const name of FILTERS) {
          const entry = data.get(name);
          const value = typeof entry === 'string' ? entry.trim() : '';
          if (value) query.set(name, value);
        }
        const search = query.toString();
        navigate(projectHref(ctx.projectId, 'tasks') + (search ? `?${search}` : ''));
      },
    },
    field('code', 'Code', text('code')),
    field('status', 'Status', status),
    field('label', 'Label', text('label')),
    field('cluster', 'Cluster', text('cluster')),
    field('from', 'From', text('from', 'datetime-local')),
    field('to', 'To', text('to', 'datetime-local')),
    h('button', { type: 'submit' }, 'Filter'),
  );
}

function pageLink(ctx: PageContext, page: number, label: string, rel: string): HTMLElement {
  const query = new URLSearchParams(ctx.query);
  if (page > 0) query.set('page', String(page));
  else query.delete('page');
  const search = query.toString();
  return h(
    'a',
    { href: projectHref(ctx.projectId, 'tasks') + (search ? `?${search}` : ''), rel },
    label,
  );
}

/**
 * The task list: filters and page in the URL, no payloads in the rows, each row's id a link (so
 * Tab reaches every row and Enter opens it), and with a token that may act, a checkbox per row
 * and "Cancel selected" (one `POST …/tasks/{id}/cancel` per task).
 */
export async function tasksPage(ctx: PageContext): Promise<void> {
  const { tasks } = await api<{ tasks: Task[] }>(
    'GET',
    projectPath(ctx.projectId, `tasks?${apiQuery(ctx.query).toString()}`),
  );
  const acting = canAct();
  const selected = new Set<string>();
  const error = errorBox();
  const status = h('p', { class: 'status', role: 'status' }, flash ?? '');
  flash = null;
  const cancelButton = h(
    'button',
    { type: 'button', disabled: true },
    'Cancel selected',
  ) as HTMLButtonElement;
  const checkboxes: HTMLInputElement[] = [];
  const refresh = () => {
    cancelButton.disabled = selected.size === 0;
    cancelButton.textContent = `Cancel selected (${selected.size})`;
  };
  cancelButton.addEventListener('click', () => {
    void cancelSelected(ctx.projectId, [...selected], error, status);
  });
  const selectAll = h('input', {
    type: 'checkbox',
    'aria-label': 'Select every task on this page',
    onchange: (event: Event) => {
      const on = (event.target as HTMLInputElement).checked;
      for (const box of checkboxes) {
        box.checked = on;
        if (on) selected.add(box.value);
        else selected.delete(box.value);
      }
      refresh();
    },
  });
  const rows = tasks.map((task) => {
    const box = h('input', {
      type: 'checkbox',
      value: task.id,
      'aria-label': `Select task ${task.id}`,
      onchange: (event: Event) => {
        if ((event.target as HTMLInputElement).checked) selected.add(task.id);
        else selected.delete(task.id);
        refresh();
      },
    }) as HTMLInputElement;
    checkboxes.push(box);
    return h(
      'tr',
      {},
      acting ? h('td', {}, box) : null,
      h(
        'td',
        {},
        h('a', { href: projectHref(ctx.projectId, `tasks/${task.id}`), class: 'mono' }, task.id),
      ),
      h('td', {}, task.code_name),
      h('td', {}, h('span', { class: `badge s-${task.status}` }, task.status)),
      h('td', {}, task.label ?? ''),
      h('td', {}, task.cluster ?? ''),
      h('td', {}, time(task.created_at)),
      h('td', { class: 'num' }, task.duration ? `${(task.duration / 1000).toFixed(1)} s` : ''),
    );
  });
  const page = Number(ctx.query.get('page') ?? '0') || 0;
  fill(
    ctx.main,
    h('h1', {}, 'Tasks'),
    filterForm(ctx),
    acting ? h('div', { class: 'bulk' }, cancelButton) : null,
    error,
    status,
    tasks.length === 0
      ? h('p', {}, 'No tasks match.')
      : h(
          'table',
          { class: 'list tasks' },
          h('caption', { class: 'sr-only' }, 'Tasks, newest first'),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              acting ? h('th', { scope: 'col' }, selectAll) : null,
              ['Task', 'Code', 'Status', 'Label', 'Cluster', 'Created', 'Duration'].map((name) =>
                h('th', { scope: 'col' }, name),
              ),
            ),
          ),
          h('tbody', {}, rows),
        ),
    h(
      'nav',
      { class: 'pages', 'aria-label': 'Pages' },
      page > 0 ? pageLink(ctx, page - 1, 'Previous page', 'prev') : null,
      tasks.length === PER_PAGE ? pageLink(ctx, page + 1, 'Next page', 'next') : null,
    ),
  );
  refresh();
}

async function cancelSelected(
  projectId: string,
  ids: string[],
  error: HTMLElement,
  status: HTMLElement,
): Promise<void> {
  showError(error, null);
  const failures: string[] = [];
  for (const id of ids) {
    try {
      await api('POST', projectPath(projectId, `tasks/${id}/cancel`));
    } catch (e) {
      failures.push(`${id}: ${e instanceof ApiError ? e.message : String(e)}`);
    }
  }
  const done = `Cancelled ${ids.length - failures.length} of ${ids.length}.`;
  if (failures.length) {
    showError(error, failures.join('; '));
    status.textContent = done;
    return;
  }
  flash = done;
  navigate(location.pathname + location.search, true);
}
