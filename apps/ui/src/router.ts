/** What a page gets: the project in the URL, the path's parameters, the query, where to render. */
export interface PageContext {
  projectId: string;
  params: string[];
  query: URLSearchParams;
  main: HTMLElement;
  /** Registers what to stop when the page is left (a live log, a timer). */
  onLeave(stop: () => void): void;
}

export type Page = (ctx: PageContext) => Promise<void>;

let render: () => void = () => undefined;

export function onNavigate(handler: () => void): void {
  render = handler;
  window.addEventListener('popstate', () => render());
  // Same-origin links of the app move without a reload (Ctrl/⌘-click still opens a new tab).
  document.addEventListener('click', (event) => {
    const link = (event.target as Element | null)?.closest?.('a');
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const href = link.getAttribute('href');
    if (!href || !href.startsWith('/ui/') || link.hasAttribute('download')) return;
    event.preventDefault();
    navigate(href);
  });
}

export function navigate(href: string, replace = false): void {
  if (replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  render();
}

/** `/ui/p/{pid}/…` */
export function projectHref(projectId: string, rest: string): string {
  return `/ui/p/${encodeURIComponent(projectId)}/${rest}`;
}
