import { canAct, currentSession, loadSession, signOut, whenSessionEnds } from './api';
import { fill, h } from './dom';
import { codesPage } from './pages/codes';
import { projectsPage, projectSwitcher } from './pages/projects';
import { schedulesPage } from './pages/schedules';
import { signInPage } from './pages/signin';
import { taskPage } from './pages/task';
import { tasksPage } from './pages/tasks';
import { webhooksPage } from './pages/webhooks';
import { Page, navigate, onNavigate, projectHref } from './router';

const root = document.getElementById('app')!;
/** Said on the sign-in page after a session ended (expired, revoked, signed out). */
let signInMessage: string | null = null;
let leaving: (() => void)[] = [];

const SECTIONS: [string, string, Page][] = [
  ['tasks', 'Tasks', tasksPage],
  ['codes', 'Codes', codesPage],
  ['schedules', 'Schedules', schedulesPage],
  ['webhooks', 'Webhooks', webhooksPage],
];

function leave(): void {
  for (const stop of leaving) stop();
  leaving = [];
}

function layout(projectId: string | null, section: string): HTMLElement {
  const session = currentSession()!;
  const main = h('main', { id: 'main', tabindex: -1 });
  const links = projectId
    ? SECTIONS.map(([path, label]) =>
        h(
          'a',
          { href: projectHref(projectId, path), 'aria-current': path === section ? 'page' : null },
          label,
        ),
      )
    : [];
  if (session.admin) {
    links.unshift(
      h(
        'a',
        { href: '/ui/projects', 'aria-current': section === 'projects' ? 'page' : null },
        'Projects',
      ),
    );
  }
  fill(
    root,
    h('a', { class: 'skip', href: '#main' }, 'Skip to content'),
    h(
      'header',
      {},
      h('span', { class: 'brand' }, 'Kiln'),
      h('nav', { 'aria-label': 'Sections' }, links),
      session.admin ? projectSwitcher(projectId) : null,
      h(
        'span',
        { class: 'who' },
        session.admin ? 'admin' : `${session.role} token${canAct() ? '' : ' (read-only)'}`,
      ),
      h(
        'button',
        {
          type: 'button',
          onclick: () => {
            void signOut().finally(() => {
              signInMessage = 'Signed out.';
              navigate('/ui/signin');
            });
          },
        },
        'Sign out',
      ),
    ),
    main,
  );
  return main;
}

async function render(): Promise<void> {
  leave();
  const path = location.pathname;
  let session = currentSession();
  if (!session) {
    const loaded = await loadSession();
    if ('ended' in loaded) signInMessage ??= loaded.ended;
    else session = loaded;
  }
  if (path === '/ui/signin' || !session) {
    if (session && path === '/ui/signin') return navigate(home(), true);
    if (path !== '/ui/signin') history.replaceState(null, '', '/ui/signin');
    document.title = 'Sign in · Kiln';
    const message = signInMessage;
    signInMessage = null;
    return signInPage(root, message, () => navigate(home(), true));
  }
  if (path === '/ui/projects' && session.admin) {
    document.title = 'Projects · Kiln';
    return projectsPage(layout(null, 'projects'));
  }
  const match = /^\/ui\/p\/([0-9a-f]{24})\/(\w+)(?:\/(.+))?$/.exec(path);
  const found = match && SECTIONS.find(([name]) => name === match[2]);
  if (!match || !found) return navigate(home(), true);
  const [, projectId, section, rest] = match;
  const page: Page = section === 'tasks' && rest ? taskPage : found[2];
  document.title = `${found[1]} · Kiln`;
  const main = layout(projectId, section);
  try {
    await page({
      projectId,
      params: rest ? rest.split('/').map(decodeURIComponent) : [],
      query: new URLSearchParams(location.search),
      main,
      onLeave: (stop) => leaving.push(stop),
    });
  } catch (error) {
    // The page could not load (its API call failed): say why in its place.
    if (currentSession()) {
      fill(main, h('p', { class: 'error', role: 'alert' }, (error as Error).message));
    }
  }
}

/** Where a session starts: its project's tasks, or the projects for the admin. */
function home(): string {
  const session = currentSession();
  if (!session) return '/ui/signin';
  return session.admin ? '/ui/projects' : projectHref(session.project_id!, 'tasks');
}

whenSessionEnds((msg) => {
  signInMessage = msg;
  navigate('/ui/signin', true);
});
onNavigate(() => void render());
void render();
