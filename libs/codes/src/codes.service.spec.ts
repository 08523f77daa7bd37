import { QueryFailedError } from 'typeorm';
import type { CodeStore } from './code-store';
import type { Code } from './code.entity';
import { CodeSpec } from './code-spec';
import { CodesService } from './codes.service';

const spec = { name: 'hello', image: 'busybox' } as CodeSpec;

/** CodesService's decisions with its store faked. */
function setup(store: Partial<Record<keyof CodeStore, unknown>>) {
  return new CodesService(store as unknown as CodeStore);
}

describe('CodesService', () => {
  it('a code not found (or deleted) is a 404', async () => {
    const codes = setup({ live: async () => null });
    await expect(codes.get('p', 'c')).rejects.toThrow('Code not found');
  });

  it('reuses a code looked up for queueing, and forgets it when this process registers', async () => {
    let lookups = 0;
    const codes = setup({
      liveByName: async () => (lookups++, { id: 'c', rev: lookups }) as Code,
      addRevision: async () => ({ id: 'c' }) as Code,
    });
    await codes.findByNameForQueueing('p', 'hello');
    await codes.findByNameForQueueing('p', 'hello');
    expect(lookups).toBe(1);
    await codes.register('p', spec);
    expect((await codes.findByNameForQueueing('p', 'hello'))?.rev).toBe(2);
  });

  it('retries once a first registration that lost a race (unique violation)', async () => {
    let tries = 0;
    const codes = setup({
      addRevision: async () => {
        if (++tries === 1) {
          throw Object.assign(new QueryFailedError('INSERT', [], new Error('duplicate')), {
            code: '23505',
          });
        }
        return { id: 'c', rev: 2 } as Code;
      },
    });
    expect((await codes.register('p', spec)).rev).toBe(2);
    expect(tries).toBe(2);
  });

  it('other errors of a registration are not retried', async () => {
    let tries = 0;
    const codes = setup({
      addRevision: async () => {
        tries++;
        throw new Error('connection lost');
      },
    });
    await expect(codes.register('p', spec)).rejects.toThrow('connection lost');
    expect(tries).toBe(1);
  });
});
