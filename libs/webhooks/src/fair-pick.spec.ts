import { Candidate, pickFair } from './fair-pick';

/** `count` due deliveries of `project`'s endpoint `endpoint`, in due order. */
function backlog(project: string, endpoint: string, count: number): Candidate[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `${project}/${endpoint}/${i}`,
    projectId: project,
    endpointKey: `${project}:${endpoint}`,
  }));
}

const idle = { projects: new Map<string, number>(), endpoints: new Map<string, number>() };
const tally = (picked: Candidate[], by: (c: Candidate) => string) =>
  picked.reduce<Record<string, number>>(
    (acc, c) => ({ ...acc, [by(c)]: (acc[by(c)] ?? 0) + 1 }),
    {},
  );

describe('pickFair', () => {
  it('shares free slots between projects however deep one backlog is', () => {
    const candidates = [
      ...backlog('a', 'e1', 8),
      ...backlog('a', 'e2', 8),
      ...backlog('b', 'e', 3),
    ];
    const picked = pickFair(candidates, idle, { free: 6, perProject: 16, perEndpoint: 8 });
    expect(tally(picked, (c) => c.projectId)).toEqual({ a: 3, b: 3 });
    // and a project's endpoints in turn
    expect(
      tally(
        picked.filter((c) => c.projectId === 'a'),
        (c) => c.endpointKey,
      ),
    ).toEqual({
      'a:e1': 2,
      'a:e2': 1,
    });
  });

  it('counts what is already in flight: the busier project waits', () => {
    const inFlight = {
      projects: new Map([['a', 10]]),
      endpoints: new Map([['a:e1', 5]]),
    };
    const candidates = [...backlog('a', 'e1', 8), ...backlog('b', 'e', 8)];
    const picked = pickFair(candidates, inFlight, { free: 4, perProject: 16, perEndpoint: 8 });
    expect(tally(picked, (c) => c.projectId)).toEqual({ b: 4 });
  });

  it('keeps each endpoint and project under its cap, even with slots free', () => {
    const candidates = [...backlog('a', 'e1', 20), ...backlog('a', 'e2', 20)];
    const picked = pickFair(candidates, idle, { free: 64, perProject: 10, perEndpoint: 4 });
    expect(tally(picked, (c) => c.endpointKey)).toEqual({ 'a:e1': 4, 'a:e2': 4 });
    const capped = pickFair(candidates, idle, { free: 64, perProject: 5, perEndpoint: 8 });
    expect(capped).toHaveLength(5);
  });

  it('takes an endpoint’s deliveries in the order offered (due order)', () => {
    const picked = pickFair(backlog('a', 'e', 5), idle, {
      free: 3,
      perProject: 16,
      perEndpoint: 8,
    });
    expect(picked.map((c) => c.id)).toEqual(['a/e/0', 'a/e/1', 'a/e/2']);
  });
});
