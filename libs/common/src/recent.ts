/**
 * Values remembered for a short while, to spare a query per request on hot paths. At most `max`
 * are kept: past that the whole map is dropped, which is cheaper than tracking ages and only
 * costs a few look-ups again.
 */
export class RecentValues<V> {
  private readonly values = new Map<string, { value: V; until: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly max: number,
  ) {}

  /** The value remembered for `key`, unless it is older than the time to live. */
  get(key: string): V | undefined {
    const entry = this.values.get(key);
    return entry && entry.until > Date.now() ? entry.value : undefined;
  }

  set(key: string, value: V): void {
    if (this.values.size >= this.max) this.values.clear();
    this.values.set(key, { value, until: Date.now() + this.ttlMs });
  }

  delete(key: string): void {
    this.values.delete(key);
  }

  clear(): void {
    this.values.clear();
  }
}
