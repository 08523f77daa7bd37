import { ErrorCode, KilnException } from '@kiln/common';
import type { ProjectLimits, QuotaName } from '@kiln/projects';
import { HeldSlots } from './held-slots';

/** Slots of a process holding at most `max`, each project's quota `quota` (or `quotas[p]`). */
function slots(max: number, quota: number, quotas: Record<string, number> = {}): HeldSlots {
  const limits = {
    quota: async (projectId: string, name: QuotaName) => {
      expect(name).toBe('invokes');
      return quotas[projectId] ?? quota;
    },
  } as unknown as ProjectLimits;
  return new HeldSlots(limits, 'invokes', max, `holds ${max} things`, 'KILN_MAX_THINGS');
}

/** The 429 a take is refused with: its code (quota or the process full) and message. */
async function refusal(promise: Promise<unknown>): Promise<{ code: ErrorCode; msg: string }> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(KilnException);
  return { code: (error as KilnException).code, msg: (error as KilnException).message };
}

const full = (max: number) => ({
  code: ErrorCode.TooManyRequests,
  msg: `This API process already holds ${max} things, its most (KILN_MAX_THINGS): retry later`,
});

describe('HeldSlots', () => {
  it("refuses past a project's quota without touching the others'", async () => {
    const held = slots(10, 2);
    await held.take('a');
    await held.take('a');
    expect(await refusal(held.take('a'))).toEqual({
      code: ErrorCode.QuotaExceeded,
      msg: 'Quota exceeded: invokes is 2 (at most 2 invokes waiting for their task per API process; the project has 2)',
    });
    await held.take('b');
    expect(held.held).toBe(3);
  });

  it("refuses every project past the process's cap, with the given msg", async () => {
    const held = slots(2, 5);
    await held.take('a');
    await held.take('b');
    expect(await refusal(held.take('c'))).toEqual(full(2));
    expect(held.held).toBe(2);
  });

  it('a release frees the slot once, however often it is called', async () => {
    const held = slots(2, 1, { b: 2 });
    const release = await held.take('a');
    await held.take('b');
    release();
    release();
    expect(held.held).toBe(1);
    await held.take('a');
    expect(await refusal(held.take('b'))).toEqual(full(2));
  });

  it('a quota of 0 refuses every take', async () => {
    expect((await refusal(slots(5, 0).take('a'))).msg).toMatch(/^Quota exceeded: invokes is 0/);
  });
});
