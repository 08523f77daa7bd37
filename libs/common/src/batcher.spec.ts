import { Batcher } from './batcher';

describe('Batcher', () => {
  it('writes an item alone at once, and what comes meanwhile together next', async () => {
    const batches: number[][] = [];
    let release: () => void = () => undefined;
    const batcher = new Batcher<number, number>(async (items) => {
      batches.push(items);
      if (batches.length === 1) await new Promise<void>((resolve) => (release = resolve));
      return items.map((item) => item * 10);
    });
    const first = batcher.add(1);
    const later = [batcher.add(2), batcher.add(3), batcher.add(4)];
    expect(batches).toEqual([[1]]);
    release();
    expect(await first).toBe(10);
    expect(await Promise.all(later)).toEqual([20, 30, 40]);
    expect(batches).toEqual([[1], [2, 3, 4]]);
  });

  it('keeps batches to `max` items', async () => {
    const sizes: number[] = [];
    const batcher = new Batcher<number, number>(async (items) => {
      sizes.push(items.length);
      await Promise.resolve();
      return items;
    }, 2);
    expect(await Promise.all([1, 2, 3, 4, 5].map((item) => batcher.add(item)))).toEqual([
      1, 2, 3, 4, 5,
    ]);
    expect(sizes).toEqual([1, 2, 2]);
  });

  it('fails every item of a failed batch, and goes on with the next', async () => {
    let calls = 0;
    const batcher = new Batcher<number, number>(async (items) => {
      calls++;
      await Promise.resolve();
      if (calls === 2) throw new Error('down');
      return items;
    });
    const first = batcher.add(1);
    const failing = [batcher.add(2), batcher.add(3)].map((added) =>
      added.then(
        () => 'ok',
        (error: Error) => error.message,
      ),
    );
    expect(await first).toBe(1);
    expect(await Promise.all(failing)).toEqual(['down', 'down']);
    expect(await batcher.add(4)).toBe(4);
  });
});
