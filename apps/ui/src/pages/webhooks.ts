import { api, projectPath } from '../api';
import { fill, h, time } from '../dom';
import { PageContext } from '../router';
import { listTable } from './common';

interface Webhook {
  id: string;
  url: string;
  events: string[];
  code_name: string | null;
  enabled: boolean;
  disabled_reason?: string | null;
  description?: string | null;
  created_at: string;
}

export async function webhooksPage(ctx: PageContext): Promise<void> {
  const { webhooks } = await api<{ webhooks: Webhook[] }>(
    'GET',
    projectPath(ctx.projectId, 'webhooks'),
  );
  fill(
    ctx.main,
    h('h1', {}, 'Webhooks'),
    webhooks.length === 0
      ? h('p', {}, 'No webhooks yet.')
      : listTable(
          'Webhooks',
          ['URL', 'Events', 'Code', 'Enabled', 'Description', 'Created'],
          webhooks.map((w) => [
            h('span', { class: 'mono' }, w.url),
            w.events.join(', '),
            w.code_name ?? 'all',
            w.enabled ? 'yes' : `no${w.disabled_reason ? ` (${w.disabled_reason})` : ''}`,
            w.description ?? '',
            time(w.created_at),
          ]),
        ),
  );
}
