/** What `h` accepts as a child: nodes, text, and nothing (skipped), nested freely. */
export type Child = Node | string | number | null | undefined | false | Child[];

type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/**
 * Builds an element: `on…` attributes become listeners, `true` an empty attribute, `false`/null
 * none. Text is always set as text (never parsed as HTML), so nothing from the API can inject.
 */
export function h(tag: string, attrs: Attrs = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(name.slice(2).toLowerCase(), value);
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces what `el` holds. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A paragraph that says an API error (its `msg`) where the action was taken, read out by screen readers. */
export function errorBox(): HTMLElement {
  return h('p', { class: 'error', role: 'alert', hidden: true });
}

export function showError(box: HTMLElement, msg: string | null): void {
  box.textContent = msg ?? '';
  box.hidden = msg === null;
}

/** `2026-12-01T20:00:00.000Z` as the browser's local time; IronWorker's "unset" time as a dash. */
export function time(iso: string | null | undefined): string {
  if (!iso || iso.startsWith('0001-')) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}
