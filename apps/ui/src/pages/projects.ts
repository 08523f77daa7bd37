import { api } from '../api';
import { fill, h, time } from '../dom';
import { navigate, projectHref } from '../router';
import { listTable } from './common';

interface Project {
  id: string;
  name: string;
  created_at: string;
}

let known: Project[] | null = null;

async function projects(): Promise<Project[]> {
  const { projects } = await api<{ projects: Project[] }>('GET', '/2/projects');
  known = projects;
  return projects;
}

/** The admin's view of every project, each a way into its tasks. */
export async function projectsPage(main: HTMLElement): Promise<void> {
  const list = await projects();
  fill(
    main,
    h('h1', {}, 'Projects'),
    list.length === 0
      ? h('p', {}, 'No projects yet.')
      : listTable(
          'Projects',
          ['Project', 'Id', 'Created'],
          list.map((p) => [
            h('a', { href: projectHref(p.id, 'tasks') }, p.name),
            h('span', { class: 'mono' }, p.id),
            time(p.created_at),
          ]),
        ),
  );
}

/** The admin's project switcher: moves to the same section of the chosen project. */
export function projectSwitcher(current: string | null): HTMLElement {
  const select = h(
    'select',
    {
      id: 'project-switcher',
      onchange: (event: Event) => {
        const id = (event.target as HTMLSelectElement).value;
        if (!id) return;
        const section = /^\/ui\/p\/[0-9a-f]{24}\/(\w+)/.exec(location.pathname)?.[1] ?? 'tasks';
        navigate(projectHref(id, section));
      },
    },
    h('option', { value: '' }, 'Switch project…'),
  ) as HTMLSelectElement;
  const fillOptions = (list: Project[]) => {
    for (const p of list) {
      select.append(h('option', { value: p.id, selected: p.id === current }, p.name));
    }
  };
  if (known) fillOptions(known);
  else void projects().then(fillOptions, () => undefined);
  return h(
    'span',
    { class: 'switcher' },
    h('label', { for: 'project-switcher', class: 'sr-only' }, 'Project'),
    select,
  );
}
