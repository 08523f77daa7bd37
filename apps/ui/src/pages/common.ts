import { ApiError } from '../api';
import { Child, h, showError } from '../dom';

/** A list table: a caption for screen readers, a header row, one row per item. */
export function listTable(caption: string, columns: string[], rows: Child[][]): HTMLElement {
  return h(
    'table',
    { class: 'list' },
    h('caption', { class: 'sr-only' }, caption),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        columns.map((name) => h('th', { scope: 'col' }, name)),
      ),
    ),
    h(
      'tbody',
      {},
      rows.map((cells) =>
        h(
          'tr',
          {},
          cells.map((cell) => h('td', {}, cell)),
        ),
      ),
    ),
  );
}

/** A button that runs `action`, showing the API's `msg` in `error` when it fails. */
export function actionButton(
  label: string,
  error: HTMLElement,
  action: () => Promise<void>,
  accessibleName?: string,
): HTMLElement {
  return h(
    'button',
    {
      type: 'button',
      'aria-label': accessibleName ?? null,
      onclick: () => {
        showError(error, null);
        action().catch((e: unknown) =>
          showError(error, e instanceof ApiError ? e.message : String(e)),
        );
      },
    },
    label,
  );
}
