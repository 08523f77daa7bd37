import { outcomeOf } from './webhook-dispatcher';
import { SendResult } from './webhook-sender';

const SCHEDULE = [5, 300, 1800];
const answer = (statusCode: number | null, error: string | null = null): SendResult => ({
  statusCode,
  error,
  durationMs: 12,
  refused: false,
});

describe('outcomeOf', () => {
  it('counts any 2xx as delivered', () => {
    for (const code of [200, 201, 204, 299]) {
      expect(outcomeOf(answer(code), 0, SCHEDULE)).toMatchObject({
        state: 'delivered',
        error: null,
      });
    }
  });

  it('fails a 410 for good and marks the endpoint gone', () => {
    expect(outcomeOf(answer(410), 0, SCHEDULE)).toMatchObject({ state: 'failed', gone: true });
  });

  it('retries 3xx, 4xx, 5xx and no answer on the schedule', () => {
    const redirect = outcomeOf(answer(302), 0, SCHEDULE);
    expect(redirect).toMatchObject({ state: 'pending', error: 'Redirect (302) not followed' });
    expect(redirect.retryInSeconds).toBeGreaterThanOrEqual(4.5);
    expect(redirect.retryInSeconds).toBeLessThanOrEqual(5.5);
    expect(outcomeOf(answer(500), 1, SCHEDULE)).toMatchObject({
      state: 'pending',
      error: 'Endpoint answered 500',
    });
    expect(outcomeOf(answer(404), 1, SCHEDULE).retryInSeconds).toBeGreaterThan(250);
    expect(outcomeOf(answer(null, 'timed out after 15000 ms'), 2, SCHEDULE)).toMatchObject({
      state: 'pending',
      statusCode: null,
      error: 'timed out after 15000 ms',
    });
  });

  it('gives up once the schedule is used up', () => {
    const outcome = outcomeOf(answer(503), 3, SCHEDULE);
    expect(outcome).toMatchObject({ state: 'failed', unreachable: false });
    expect(outcome.gone).toBeUndefined();
  });

  it('says when the endpoint could not be reached at all (which parks it at once)', () => {
    const refused = { ...answer(null, 'connect ECONNREFUSED 127.0.0.1:9'), unreachable: true };
    expect(outcomeOf(refused, 0, SCHEDULE)).toMatchObject({ state: 'pending', unreachable: true });
    expect(outcomeOf(answer(null, 'socket hang up'), 0, SCHEDULE)).toMatchObject({
      state: 'pending',
      unreachable: false,
    });
  });
});
