import { createHmac } from 'node:crypto';
import { newWebhookSecret, signature, signedHeaders } from './signing';

describe('Standard Webhooks signing', () => {
  it('matches the spec test vector', () => {
    // From the Standard Webhooks reference libraries' tests.
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const id = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
    const timestamp = 1614265330;
    const body = '{"test": 2432232314}';
    expect(signature(secret, id, timestamp, body)).toBe(
      'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    );
  });

  it('keys the HMAC with the decoded secret, over id.timestamp.body', () => {
    const secret = newWebhookSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
    const expected = createHmac('sha256', key).update('msg_1.1700000000.{}').digest('base64');
    expect(signature(secret, 'msg_1', 1700000000, '{}')).toBe(`v1,${expected}`);
  });

  it('signs with every secret during a rotation, space-separated', () => {
    const [current, previous] = [newWebhookSecret(), newWebhookSecret()];
    const headers = signedHeaders([current, previous], 'msg_x', 1700000000, 'body');
    expect(headers['webhook-id']).toBe('msg_x');
    expect(headers['webhook-timestamp']).toBe('1700000000');
    expect(headers['webhook-signature'].split(' ')).toEqual([
      signature(current, 'msg_x', 1700000000, 'body'),
      signature(previous, 'msg_x', 1700000000, 'body'),
    ]);
  });
});
