/**
 * Natural batching, as a database's group commit: items added while a batch is being written go
 * together in the next one. At low load each item is written at once, alone; under load one
 * statement serves many. `write` gets the items, at most `max`, and returns one result per item,
 * in order; a batch that fails fails each of its items (their callers retry as they would alone).
 */
export class Batcher<I, R> {
  private queue: { item: I; resolve: (result: R) => void; reject: (error: unknown) => void }[] = [];
  private writing = false;

  constructor(
    private readonly write: (items: I[]) => Promise<R[]>,
    private readonly max = 100,
  ) {}

  add(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.max);
        try {
          const results = await this.write(batch.map((entry) => entry.item));
          if (results.length !== batch.length) {
            throw new Error(`a batch of ${batch.length} got ${results.length} results`);
          }
          batch.forEach((entry, i) => entry.resolve(results[i]));
        } catch (error) {
          for (const entry of batch) entry.reject(error);
        }
      }
    } finally {
      this.writing = false;
    }
  }
}
