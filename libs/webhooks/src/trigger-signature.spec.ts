import { createHmac } from 'node:crypto';
import { hashSecret, sameSecret } from '@kiln/common';
import { expectedHmac, hmacMatches } from './trigger-signature';

describe('incoming trigger signatures', () => {
  const body = Buffer.from('{"ref":"refs/heads/main"}');

  it("accepts GitHub's X-Hub-Signature-256 form", () => {
    const header = `sha256=${createHmac('sha256', 'It’s a Secret to Everybody').update(body).digest('hex')}`;
    expect(hmacMatches(header, 'It’s a Secret to Everybody', body, 'sha256=', 'hex')).toBe(true);
    expect(
      hmacMatches(
        header.toUpperCase().replace('SHA256=', 'sha256='),
        'It’s a Secret to Everybody',
        body,
        'sha256=',
        'hex',
      ),
    ).toBe(true);
  });

  it('refuses a wrong secret, a changed body, a missing header or a wrong prefix', () => {
    const header = expectedHmac('s3cret', body, 'sha256=', 'hex');
    expect(hmacMatches(header, 'other', body, 'sha256=', 'hex')).toBe(false);
    expect(hmacMatches(header, 's3cret', Buffer.from('{"ref":"x"}'), 'sha256=', 'hex')).toBe(false);
    expect(hmacMatches(undefined, 's3cret', body, 'sha256=', 'hex')).toBe(false);
    expect(hmacMatches(header.slice('sha256='.length), 's3cret', body, 'sha256=', 'hex')).toBe(
      false,
    );
  });

  it('supports base64 digests without a prefix', () => {
    const header = createHmac('sha256', 'k').update(body).digest('base64');
    expect(hmacMatches(header, 'k', body, '', 'base64')).toBe(true);
    expect(hmacMatches(header.toLowerCase(), 'k', body, '', 'base64')).toBe(false);
  });

  it('hashes secrets and compares them safely', () => {
    expect(hashSecret('abc')).toMatch(/^[0-9a-f]{64}$/);
    expect(sameSecret('abc', 'abc')).toBe(true);
    expect(sameSecret('abc', 'abd')).toBe(false);
    expect(sameSecret('abc', 'abcd')).toBe(false);
  });
});
