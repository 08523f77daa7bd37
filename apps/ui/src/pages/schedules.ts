import { api, projectPath } from '../api';
import { fill, h, time } from '../dom';
import { PageContext } from '../router';
import { listTable } from './common';

interface Schedule {
  id: string;
  code_name: string;
  status?: string;
  run_every?: number | null;
  cron?: string | null;
  timezone?: string | null;
  run_count?: number;
  next_start?: string;
  last_run_time?: string;
}

export async function schedulesPage(ctx: PageContext): Promise<void> {
  const { schedules } = await api<{ schedules: Schedule[] }>(
    'GET',
    projectPath(ctx.projectId, 'schedules?per_page=100'),
  );
  fill(
    ctx.main,
    h('h1', {}, 'Schedules'),
    schedules.length === 0
      ? h('p', {}, 'No schedules yet.')
      : listTable(
          'Schedules',
          ['Schedule', 'Code', 'Status', 'Every', 'Runs', 'Last run', 'Next run'],
          schedules.map((s) => [
            h('span', { class: 'mono' }, s.id),
            s.code_name,
            s.status ?? '',
            s.cron
              ? `cron ${s.cron} (${s.timezone ?? 'UTC'})`
              : s.run_every
                ? `${s.run_every} s`
                : 'once',
            String(s.run_count ?? 0),
            time(s.last_run_time),
            time(s.next_start),
          ]),
        ),
  );
}
