import { LogChunk, LogStream } from '@kiln/tasks';
import { TaskLogWriter, cutToBytes } from './task-log-writer';

async function run(
  frames: [1 | 2, Buffer | string][],
  maxBytes = 1024 * 1024,
  chunkBytes?: number,
) {
  const stored: LogChunk[] = [];
  const writer = new TaskLogWriter(async (chunks) => void stored.push(...chunks), {
    maxBytes,
    chunkBytes,
  });
  for (const [stream, data] of frames) {
    if (!writer.write({ stream, data: Buffer.isBuffer(data) ? data : Buffer.from(data) })) {
      await new Promise((resolve) => writer.once('drain', resolve));
    }
  }
  await new Promise<void>((resolve, reject) =>
    writer.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
  return {
    stored,
    text: stored.map((c) => c.data).join(''),
    size: writer.size,
    stderrTail: writer.stderrTail,
  };
}

describe('TaskLogWriter', () => {
  it('keeps the last KiB of STDERR, past the log cap too, for the reason a task failed', async () => {
    const { stderrTail } = await run(
      [
        [2, 'early\n'],
        [1, 'x'.repeat(4096)],
        [2, 'y'.repeat(2000)],
        [1, 'out\n'],
        [2, "dd: error writing '/tmp/f': No space left on device\n"],
      ],
      1024,
    );
    expect(stderrTail).toHaveLength(1024);
    expect(stderrTail.endsWith("dd: error writing '/tmp/f': No space left on device\n")).toBe(true);
    expect(stderrTail).not.toContain('out');
  });

  it('keeps STDOUT and STDERR interleaved as printed, with ordered seqs', async () => {
    const { stored, text } = await run([
      [1, 'a\n'],
      [2, 'b\n'],
      [1, 'c\n'],
    ]);
    expect(text).toBe('a\nb\nc\n');
    expect(stored.map((c) => c.stream)).toEqual([
      LogStream.Stdout,
      LogStream.Stderr,
      LogStream.Stdout,
    ]);
    expect(stored.map((c) => c.seq)).toEqual([1, 2, 3]);
  });

  it('makes NUL bytes and invalid UTF-8 safe, and joins characters split across frames', async () => {
    const euro = Buffer.from('€');
    const { text } = await run([
      [1, Buffer.from([0x61, 0x00, 0x62, 0xff, 0x0a])],
      [1, euro.subarray(0, 1)],
      [1, euro.subarray(1)],
    ]);
    expect(text).toBe('a\u2400b\ufffd\n€');
    expect(text).not.toContain('\u0000');
  });

  it('keeps the head and the tail with a marker between when over the cap', async () => {
    const lines = Array.from(
      { length: 2000 },
      (_, i) => [1, `line ${String(i).padStart(4, '0')}\n`] as [1, string],
    );
    const { text, size } = await run(lines, 4000);
    expect(text.startsWith('line 0000\nline 0001\n')).toBe(true);
    expect(text.endsWith('line 1998\nline 1999\n')).toBe(true);
    expect(text).toMatch(/\[kiln: \d+ bytes of output omitted\]/);
    const omitted = Number(/\[kiln: (\d+) bytes/.exec(text)![1]);
    const marker = /\n\[kiln: \d+ bytes of output omitted\]\n/.exec(text)![0];
    expect(Buffer.byteLength(text) - Buffer.byteLength(marker)).toBe(4000);
    expect(omitted).toBe(2000 * 10 - 4000);
    expect(size).toBe(Buffer.byteLength(text));
  });

  it('stores chunks no larger than the chunk size', async () => {
    const { stored, text } = await run([[1, 'x'.repeat(10_000)]], 1024 * 1024, 1024);
    expect(stored.every((c) => Buffer.byteLength(c.data) <= 1024)).toBe(true);
    expect(text.length).toBe(10_000);
  });

  it('bounds memory for huge output: only the cap is ever kept', async () => {
    const megabyte = Buffer.alloc(1024 * 1024, 0x79);
    const frames = Array.from({ length: 64 }, () => [1, megabyte] as [1, Buffer]);
    const before = process.memoryUsage().heapUsed;
    const { size } = await run(frames, 1024 * 1024);
    expect(size).toBeLessThan(1024 * 1024 + 100);
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(48 * 1024 * 1024);
  });
});

describe('TaskLogWriter timing', () => {
  it('stores output after a quiet spell at once, and batches a burst', async () => {
    const batches: { at: number; text: string }[] = [];
    const started = Date.now();
    const writer = new TaskLogWriter(
      async (chunks) =>
        void batches.push({ at: Date.now() - started, text: chunks.map((c) => c.data).join('') }),
      { maxBytes: 1024 * 1024, flushIntervalMs: 200 },
    );
    const frame = (data: string) => ({ stream: 1 as const, data: Buffer.from(data) });
    writer.write(frame('first\n'));
    writer.write(frame('burst 1\n'));
    writer.write(frame('burst 2\n'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(batches).toEqual([{ at: expect.any(Number), text: 'first\n' }]);
    expect(batches[0].at).toBeLessThan(20);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(batches.map((b) => b.text)).toEqual(['first\n', 'burst 1\nburst 2\n']);
    writer.write(frame('later\n')); // quiet for longer than the interval: at once again
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(batches.map((b) => b.text)).toEqual(['first\n', 'burst 1\nburst 2\n', 'later\n']);
    await new Promise<void>((resolve) => writer.end(() => resolve()));
  });
});

describe('TaskLogWriter for a hot task (holdFirstOutput, takeRest)', () => {
  it('holds the first output for the flush timer and hands the rest over unstored', async () => {
    const stored: LogChunk[] = [];
    const writer = new TaskLogWriter(async (chunks) => void stored.push(...chunks), {
      maxBytes: 1024 * 1024,
      flushIntervalMs: 1000,
      holdFirstOutput: true,
    });
    writer.write({ stream: 1, data: Buffer.from('first\n') });
    writer.write({ stream: 2, data: Buffer.from('oops\n') });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stored).toEqual([]);
    const rest = await writer.takeRest();
    expect(rest.map((chunk) => [chunk.seq, chunk.stream, chunk.data])).toEqual([
      [1, LogStream.Stdout, 'first\n'],
      [2, LogStream.Stderr, 'oops\n'],
    ]);
    expect(writer.size).toBe(11);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(stored).toEqual([]);
  });

  it('takes the cap marker and the tail too, after what was stored', async () => {
    const stored: LogChunk[] = [];
    const writer = new TaskLogWriter(async (chunks) => void stored.push(...chunks), {
      maxBytes: 20,
      flushIntervalMs: 5,
      holdFirstOutput: true,
    });
    writer.write({ stream: 1, data: Buffer.from('0123456789') });
    await new Promise((resolve) => setTimeout(resolve, 30));
    writer.write({ stream: 1, data: Buffer.from('abcdefghijklmnopqrstuvwxyz') });
    const rest = await writer.takeRest();
    const text = [...stored, ...rest].map((chunk) => chunk.data).join('');
    expect(text).toBe('0123456789\n[kiln: 16 bytes of output omitted]\nqrstuvwxyz');
  });
});

describe('TaskLogWriter through an outage', () => {
  const frame = (data: string) => ({ stream: 1 as const, data: Buffer.from(data) });
  const ended = (writer: TaskLogWriter) =>
    new Promise<void>((resolve, reject) =>
      writer.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );

  it('keeps what it could not store, never holds the stream, and hands the rest over in order', async () => {
    const stored: LogChunk[] = [];
    let down = true;
    let tries = 0;
    const writer = new TaskLogWriter(
      async (chunks) => {
        tries++;
        if (down) throw new Error('connect ECONNREFUSED');
        stored.push(...chunks);
      },
      { maxBytes: 1024 * 1024, chunkBytes: 8, flushIntervalMs: 10 },
    );
    for (let i = 0; i < 50; i++) {
      // Each write is over the chunk size: a write the sink held would never return true here.
      expect(writer.write(frame(`line ${String(i).padStart(3, '0')}\n`))).toBe(true);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await ended(writer);
    // Backoff: not one write per flush while the sink is down.
    expect(tries).toBeLessThan(10);
    expect(stored).toEqual([]);
    down = false;
    const kept = await writer.takeUnstored();
    // takeUnstored tries a last write: the sink is back, so it stored everything itself.
    expect(kept).toEqual([]);
    expect(stored.map((c) => c.data).join('')).toBe(
      Array.from({ length: 50 }, (_, i) => `line ${String(i).padStart(3, '0')}\n`).join(''),
    );
    expect(stored.map((c) => c.seq)).toEqual(stored.map((_, i) => i + 1));
    expect(writer.size).toBe(50 * 9);
  });

  it('hands over the chunks still unstored when the sink stays down', async () => {
    const writer = new TaskLogWriter(
      async () => {
        throw new Error('Connection terminated');
      },
      { maxBytes: 1024 * 1024 },
    );
    writer.write(frame('a\n'));
    writer.write({ stream: 2, data: Buffer.from('b\n') });
    await ended(writer);
    const kept = await writer.takeUnstored();
    expect(kept.map((c) => [c.seq, c.stream, c.data])).toEqual([
      [1, LogStream.Stdout, 'a\n'],
      [2, LogStream.Stderr, 'b\n'],
    ]);
    expect(writer.size).toBe(4);
    expect(await writer.takeUnstored()).toEqual([]);
  });
});

describe('cutToBytes', () => {
  it('never splits a character', () => {
    expect(cutToBytes('a€b', 2)).toBe('a');
    expect(cutToBytes('a€b', 4)).toBe('a€');
    expect(cutToBytes('😀x', 3)).toBe('');
    expect(cutToBytes('😀x', 2, true)).toBe('😀');
  });
});
