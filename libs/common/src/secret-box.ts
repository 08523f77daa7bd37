import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const B64 = '[A-Za-z0-9_-]';
/** `v2.<kid>.<iv>.<ciphertext>.<tag>`, base64url parts: what {@link SecretBox.seal} writes. */
const V2 = new RegExp(`^v2\\.([0-9a-f]{8})\\.(${B64}{16})\\.(${B64}*)\\.(${B64}+)$`);
/** `v1.<iv>.<tag>.<ciphertext>`: registry credentials sealed before key ids (no kid: try each key). */
const V1 = new RegExp(`^v1\\.(${B64}{16})\\.(${B64}+)\\.(${B64}*)$`);

/** A sealed value that does not open: wrong key, another row's value, tampered or truncated. */
export class SealedSecretError extends Error {}

/** The id of a key, written in what it seals: the first 8 hex digits of its SHA-256. */
export function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

/**
 * Whether `value` is in a sealed format. Anything else is a legacy plain value, stored before
 * sealing existed or by a server without a key, and read as it is until `npm run reseal` seals it.
 */
export function isSealed(value: string): boolean {
  return V2.test(value) || V1.test(value);
}

/** The keys of a server: the current one (from config's `credentialsKey`) and former ones. */
export interface SecretKeys {
  credentialsKey: Buffer | undefined;
  credentialsOldKeys: Buffer[];
}

/**
 * AES-256-GCM for secrets at rest. A sealed value names the key that sealed it, so several keys
 * can open (rotation: the current key seals, former keys only open). `context` (the row and
 * column a value belongs to) is authenticated too, so a value copied into another row, another
 * project's for instance, does not open.
 */
export class SecretBox {
  private readonly keys = new Map<string, Buffer>();
  /** The id of the key that seals; undefined when the server has none. */
  readonly currentKid: string | undefined;

  constructor(current: Buffer | undefined, old: Buffer[] = []) {
    this.currentKid = current ? keyId(current) : undefined;
    for (const key of current ? [current, ...old] : old) {
      if (!this.keys.has(keyId(key))) this.keys.set(keyId(key), key);
    }
  }

  static from(config: SecretKeys): SecretBox {
    return new SecretBox(config.credentialsKey, config.credentialsOldKeys);
  }

  /** Whether this server seals (it has a current key). */
  get sealing(): boolean {
    return this.currentKid !== undefined;
  }

  /** Seals under the current key; throws when there is none. */
  seal(plaintext: string, context: string): string {
    if (!this.currentKid) throw new SealedSecretError('no key to seal with');
    const key = this.keys.get(this.currentKid)!;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const sealed = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return ['v2', this.currentKid, b64(iv), b64(sealed), b64(cipher.getAuthTag())].join('.');
  }

  /** What to store: sealed when this server has a key, else the plain value (see docs/security.md). */
  store(plaintext: string, context: string): string {
    return this.sealing ? this.seal(plaintext, context) : plaintext;
  }

  /** Opens a sealed value; throws {@link SealedSecretError} when it does not open. */
  open(box: string, context: string): string {
    const v2 = V2.exec(box);
    if (v2) {
      const [, kid, iv, sealed, tag] = v2;
      const key = this.keys.get(kid);
      if (!key) {
        throw new SealedSecretError(
          `sealed under key ${kid}, which is neither KILN_CREDENTIALS_KEY nor in KILN_CREDENTIALS_OLD_KEYS`,
        );
      }
      return decrypt(key, iv, sealed, tag, context);
    }
    const v1 = V1.exec(box);
    if (v1) {
      const [, iv, tag, sealed] = v1;
      for (const key of this.keys.values()) {
        try {
          return decrypt(key, iv, sealed, tag, context);
        } catch {
          // the next key, perhaps
        }
      }
      throw new SealedSecretError('does not open with any configured key');
    }
    throw new SealedSecretError('not a sealed secret');
  }

  /** What a stored value holds: a sealed one opened, a legacy plain one as it is. */
  read(value: string, context: string): string {
    return isSealed(value) ? this.open(value, context) : value;
  }

  /** Whether `npm run reseal` has to rewrite a stored value: plain, or not under the current key. */
  needsReseal(value: string): boolean {
    const v2 = V2.exec(value);
    return !v2 || v2[1] !== this.currentKid;
  }
}

function decrypt(key: Buffer, iv: string, sealed: string, tag: string, context: string): string {
  const tagBytes = Buffer.from(tag, 'base64url');
  // GCM accepts shorter tags, which are easier to forge: only the full 16 bytes are taken.
  if (tagBytes.length !== TAG_BYTES) throw new SealedSecretError('the tag is not 16 bytes');
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'), {
    authTagLength: TAG_BYTES,
  });
  decipher.setAAD(Buffer.from(context, 'utf8'));
  decipher.setAuthTag(tagBytes);
  try {
    return Buffer.concat([
      decipher.update(Buffer.from(sealed, 'base64url')),
      decipher.final(),
    ]).toString('utf8');
  } catch {
    throw new SealedSecretError('does not open (another key, another row, or altered bytes)');
  }
}

function b64(bytes: Buffer): string {
  return bytes.toString('base64url');
}
