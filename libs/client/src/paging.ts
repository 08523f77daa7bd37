/** IronWorker's last page number (`page` is 0-100). */
const LAST_PAGE = 100;

/** Every item of a paged list, fetching page after page until one comes back short. */
export async function* paged<T>(
  fetchPage: (page: number) => Promise<T[]>,
  perPage: number,
): AsyncGenerator<T> {
  for (let page = 0; page <= LAST_PAGE; page++) {
    const items = await fetchPage(page);
    yield* items;
    if (items.length < perPage) return;
  }
}

/** The object without its `undefined` fields: what was not given is not sent. */
export function compact(body: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined));
}
