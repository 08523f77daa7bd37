import { TASK_STATUSES, eventOf } from '@kiln/tasks';
import { WEBHOOK_EVENTS as CLIENT_EVENTS } from '../../client/src/types';
import { WEBHOOK_EVENTS } from './webhook-spec';

describe('webhook events', () => {
  it('the client names exactly the events the server sends', () => {
    expect([...CLIENT_EVENTS].sort()).toEqual([...WEBHOOK_EVENTS].sort());
  });

  it('every status change but to preparing emits an event a subscriber can name', () => {
    expect(eventOf('preparing')).toBeNull();
    for (const status of TASK_STATUSES.filter((s) => s !== 'preparing')) {
      expect(WEBHOOK_EVENTS).toContain(eventOf(status));
    }
  });
});
