import { api, canAct, projectPath } from '../api';
import { errorBox, fill, h, time } from '../dom';
import { PageContext, navigate, projectHref } from '../router';
import { actionButton, listTable } from './common';

interface Code {
  id: string;
  name: string;
  rev?: number;
  image?: string;
  max_concurrency?: number;
  created_at?: string;
  updated_at?: string;
}

/** The codes: with a token that may act, pause/resume each one's queue and cancel all its tasks. */
export async function codesPage(ctx: PageContext): Promise<void> {
  const { codes } = await api<{ codes: Code[] }>(
    'GET',
    projectPath(ctx.projectId, 'codes?per_page=100'),
  );
  const error = errorBox();
  const reload = () => navigate(location.pathname, true);
  const act = (code: Code, what: string) => async () => {
    await api('POST', projectPath(ctx.projectId, `codes/${code.id}/${what}`));
    reload();
  };
  const rows = codes.map((code) => {
    const paused = code.max_concurrency === -1;
    return [
      h(
        'a',
        { href: `${projectHref(ctx.projectId, 'tasks')}?code=${encodeURIComponent(code.name)}` },
        code.name,
      ),
      String(code.rev ?? ''),
      h('span', { class: 'mono' }, code.image ?? ''),
      paused ? h('span', { class: 'badge s-paused' }, 'paused') : 'running',
      time(code.updated_at),
      canAct()
        ? [
            paused
              ? actionButton('Resume', error, act(code, 'resume_task_queue'), `Resume ${code.name}`)
              : actionButton('Pause', error, act(code, 'pause_task_queue'), `Pause ${code.name}`),
            ' ',
            actionButton(
              'Cancel all',
              error,
              act(code, 'cancel_all'),
              `Cancel all tasks of ${code.name}`,
            ),
          ]
        : null,
    ];
  });
  fill(
    ctx.main,
    h('h1', {}, 'Codes'),
    error,
    codes.length === 0
      ? h('p', {}, 'No codes yet.')
      : listTable(
          'Codes',
          ['Name', 'Revision', 'Image', 'Queue', 'Updated', canAct() ? 'Actions' : ''].filter(
            Boolean,
          ),
          rows.map((cells) => (canAct() ? cells : cells.slice(0, 5))),
        ),
  );
}
