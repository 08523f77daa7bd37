import { RedactingLogger, redactSecrets } from './redact';

describe('redactSecrets', () => {
  it.each([
    ['Authorization: OAuth abcdefgh123', 'abcdefgh123'],
    ['{"authorization":"Bearer zzzzzzzz9"}', 'zzzzzzzz9'],
    ['token kiln_AbCdEf0123456789 refused', 'AbCdEf0123456789'],
    ['signing with whsec_c2VjcmV0c2VjcmV0', 'c2VjcmV0c2VjcmV0'],
    ['POST http://user:hunter2@10.0.0.1/hook failed', 'hunter2'],
    ['GET /2/projects/p/triggers/t?secret=s3cr3tvalue&x=1', 's3cr3tvalue'],
    ['row v2.0123abcd.AAAAAAAAAAAAAAAA.Zm9v.BBBBBBBBBBBBBBBBBBBBBB', 'Zm9v'],
    ['body {"token":"plain-tok-1","name":"x"}', 'plain-tok-1'],
    ["job { payload: 'payload-marker-2', id: 'a' }", 'payload-marker-2'],
    ['{"env_vars":{"DB_PASS":"envsecret3"},"x":1}', 'envsecret3'],
    ['{"secret": "trigger-secret\\"4"}', 'trigger-secret'],
  ])('%s', (line, secret) => {
    expect(line).toContain(secret);
    expect(redactSecrets(line)).not.toContain(secret);
  });

  it('leaves ordinary lines alone', () => {
    const line = 'task 65a1 ended: exit code 1 at http://127.0.0.1:8080/2/projects';
    expect(redactSecrets(line)).toBe(line);
    const config = 'KILN_METRICS_TOKEN="abc": payload: too large; token refused';
    expect(redactSecrets(config)).toBe(config);
  });
});

describe('RedactingLogger', () => {
  it('redacts messages and stack traces before they are written', () => {
    const written: string[] = [];
    const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      written.push(String(chunk));
      return true;
    });
    const err = jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      written.push(String(chunk));
      return true;
    });
    try {
      const logger = new RedactingLogger({ logLevels: ['error', 'warn', 'log'] });
      logger.warn('POST http://u:pw-secret-1@127.0.0.1/hook answered 500', 'Webhooks');
      logger.error(
        'unexpected error',
        'Error: Authorization: OAuth kiln_tokensecret2\n    at x (y.ts:1:1)',
        'HTTP',
      );
      logger.log({ headers: { authorization: 'Bearer tokensecret3' } });
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
    const text = written.join('');
    expect(text).toContain('answered 500');
    expect(text).toContain('[redacted]');
    for (const secret of ['pw-secret-1', 'tokensecret2', 'tokensecret3']) {
      expect(text).not.toContain(secret);
    }
  });
});
