import { TOKEN_PREFIX, hashSecret, newSecret, sameSecret } from './secrets';

describe('secrets', () => {
  it('are 32 base64url characters, never starting with a dash (it would read as a CLI flag)', () => {
    const secrets = Array.from({ length: 5000 }, () => newSecret());
    for (const secret of secrets) {
      expect(secret).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{31}$/);
    }
    expect(new Set(secrets).size).toBe(secrets.length);
  });

  it('carry a prefix when asked (API tokens: kiln_), the random part still never starting with a dash', () => {
    expect(TOKEN_PREFIX).toBe('kiln_');
    for (let i = 0; i < 5000; i++) {
      expect(newSecret(TOKEN_PREFIX)).toMatch(/^kiln_[A-Za-z0-9_][A-Za-z0-9_-]{31}$/);
    }
  });

  it('are stored as a SHA-256 and compared whole', () => {
    expect(hashSecret('abc')).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    expect(sameSecret('abc', 'abc')).toBe(true);
    expect(sameSecret('abc', 'abd')).toBe(false);
    expect(sameSecret('abc', 'abcd')).toBe(false);
  });
});
