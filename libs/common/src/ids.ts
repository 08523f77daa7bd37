import { randomBytes } from 'node:crypto';

/**
 * Resource ids are 24 lowercase hex characters, ObjectId-style: 4 bytes of Unix seconds, 5 bytes
 * of per-process randomness and a 3-byte counter. They sort by creation time, and IronWorker's
 * clients (Ruby's `check_id`) insist on exactly 24 characters.
 */
const processRandom = randomBytes(5).toString('hex');
let counter = randomBytes(3).readUIntBE(0, 3);

export function newId(now: Date = new Date()): string {
  counter = (counter + 1) % 0x1000000;
  const seconds = Math.floor(now.getTime() / 1000);
  return (
    seconds.toString(16).padStart(8, '0') + processRandom + counter.toString(16).padStart(6, '0')
  );
}

const ID_PATTERN = /^[0-9a-f]{24}$/;

export function isId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}
