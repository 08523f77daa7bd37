import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { isSealed, keyId, SealedSecretError, SecretBox } from './secret-box';

/** How registry credentials were sealed before key ids: `v1.<iv>.<tag>.<ciphertext>`. */
function sealV1(key: Buffer, plaintext: string, context: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(context, 'utf8'));
  const sealed = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', iv, cipher.getAuthTag(), sealed]
    .map((p) => (typeof p === 'string' ? p : p.toString('base64url')))
    .join('.');
}

describe('SecretBox', () => {
  const key = randomBytes(32);
  const box = new SecretBox(key);

  it('opens what it sealed, names the key, and the sealed text does not hold the secret', () => {
    const sealed = box.seal('hunter2', 'row-1');
    expect(sealed).toMatch(/^v2\.[0-9a-f]{8}\.[\w-]{16}\.[\w-]+\.[\w-]{22}$/);
    expect(sealed.split('.')[1]).toBe(keyId(key));
    expect(keyId(key)).toBe(createHash('sha256').update(key).digest('hex').slice(0, 8));
    expect(sealed).not.toContain('hunter2');
    expect(isSealed(sealed)).toBe(true);
    expect(box.open(sealed, 'row-1')).toBe('hunter2');
    expect(box.read(sealed, 'row-1')).toBe('hunter2');
    expect(box.seal('hunter2', 'row-1')).not.toBe(sealed); // a fresh IV each time
    expect(box.open(box.seal('', 'row-1'), 'row-1')).toBe('');
  });

  it('refuses another key, another row, tampered bytes and a short or long tag', () => {
    const sealed = box.seal('hunter2', 'row-1');
    expect(() => new SecretBox(randomBytes(32)).open(sealed, 'row-1')).toThrow(
      /KILN_CREDENTIALS_OLD_KEYS/,
    );
    expect(() => box.open(sealed, 'row-2')).toThrow(SealedSecretError);
    const parts = sealed.split('.');
    const ciphertext = Buffer.from(parts[3], 'base64url');
    ciphertext[0] ^= 1;
    expect(() =>
      box.open(
        [...parts.slice(0, 3), ciphertext.toString('base64url'), parts[4]].join('.'),
        'row-1',
      ),
    ).toThrow(SealedSecretError);
    const tag = Buffer.from(parts[4], 'base64url');
    for (const bad of [
      tag.subarray(0, 12),
      tag.subarray(0, 4),
      Buffer.concat([tag, Buffer.alloc(1)]),
    ]) {
      expect(() =>
        box.open([...parts.slice(0, 4), bad.toString('base64url')].join('.'), 'row-1'),
      ).toThrow(/tag is not 16 bytes/);
    }
    expect(() => box.open('v2.nothing', 'row-1')).toThrow(/not a sealed secret/);
  });

  it('rotation: a former key opens what it sealed, only the current key seals', () => {
    const next = randomBytes(32);
    const sealedOld = box.seal('hunter2', 'row-1');
    const rotated = new SecretBox(next, [key]);
    expect(rotated.currentKid).toBe(keyId(next));
    expect(rotated.open(sealedOld, 'row-1')).toBe('hunter2');
    expect(rotated.needsReseal(sealedOld)).toBe(true);
    const resealed = rotated.seal(rotated.open(sealedOld, 'row-1'), 'row-1');
    expect(resealed.split('.')[1]).toBe(keyId(next));
    expect(rotated.needsReseal(resealed)).toBe(false);
    // Once the old key is gone, what it sealed no longer opens.
    expect(() => new SecretBox(next).open(sealedOld, 'row-1')).toThrow(SealedSecretError);
  });

  it('opens registry credentials sealed in the v1 format, with any configured key', () => {
    const v1 = sealV1(key, '{"password":"p"}', 'ctx');
    expect(isSealed(v1)).toBe(true);
    expect(new SecretBox(randomBytes(32), [key]).open(v1, 'ctx')).toBe('{"password":"p"}');
    expect(new SecretBox(key).needsReseal(v1)).toBe(true);
    expect(() => new SecretBox(randomBytes(32)).open(v1, 'ctx')).toThrow(SealedSecretError);
  });

  it('reads legacy plain values as they are; without a key, stores plain and refuses to seal', () => {
    expect(isSealed('whsec_abc')).toBe(false);
    expect(isSealed('v2.1.0')).toBe(false);
    expect(box.read('whsec_abc', 'row-1')).toBe('whsec_abc');
    expect(box.needsReseal('whsec_abc')).toBe(true);
    const keyless = new SecretBox(undefined);
    expect(keyless.sealing).toBe(false);
    expect(keyless.store('s', 'row-1')).toBe('s');
    expect(() => keyless.seal('s', 'row-1')).toThrow(SealedSecretError);
    expect(() => keyless.open(box.seal('s', 'row-1'), 'row-1')).toThrow(SealedSecretError);
    expect(isSealed(box.store('s', 'row-1'))).toBe(true);
  });
});
