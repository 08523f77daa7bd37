import { Writable } from 'node:stream';
import type { OutputFrame } from '@kiln/docker';
import { FencedOutput } from './fenced-output';

const FENCE = 'f'.repeat(32);

/** A task's sink: what reached it, as `<stream>:<text>` per write, and its progress. */
function sink() {
  const frames: string[] = [];
  const progress: number[] = [];
  const output = new Writable({
    objectMode: true,
    write(frame: OutputFrame, _encoding, done) {
      frames.push(`${frame.stream}:${frame.data.toString()}`);
      done();
    },
  });
  return { frames, progress, output, text: (stream: 1 | 2) => joined(frames, stream) };
}

function joined(frames: string[], stream: 1 | 2): string {
  return frames
    .filter((frame) => frame.startsWith(`${stream}:`))
    .map((frame) => frame.slice(2))
    .join('');
}

async function feed(fenced: FencedOutput, stream: 1 | 2, text: string): Promise<void> {
  await new Promise<void>((resolve, reject) =>
    fenced.write({ stream, data: Buffer.from(text) }, (error) =>
      error ? reject(error) : resolve(),
    ),
  );
}

function begin(fenced: FencedOutput, fence = FENCE) {
  const task = sink();
  fenced.begin({ fence, output: task.output, progress: (n) => task.progress.push(n) });
  return task;
}

describe('FencedOutput', () => {
  it('gives a task the lines between its fences on each stream, and drops the rest', async () => {
    const fenced = new FencedOutput();
    await feed(fenced, 1, 'starting up\n');
    const task = begin(fenced);
    await feed(fenced, 1, `background\n${FENCE}\nout 1\nout 2\n`);
    await feed(fenced, 2, `${FENCE}\nerr 1\n${FENCE}\n`);
    const ended = fenced.ended();
    await feed(fenced, 1, `${FENCE}\nafter\n`);
    await ended;
    fenced.finish();
    expect(task.text(1)).toBe('out 1\nout 2\n');
    expect(task.text(2)).toBe('err 1\n');
    expect(fenced.stray).toContain('starting up');
    expect(fenced.stray).toContain('after');
  });

  it('ends a last line without a newline at the fence, keeping its text', async () => {
    const fenced = new FencedOutput();
    const task = begin(fenced);
    await feed(fenced, 1, `${FENCE}\nno newline`);
    await feed(fenced, 1, `${FENCE}\n`);
    await feed(fenced, 2, `${FENCE}\n${FENCE}\n`);
    await fenced.ended();
    expect(task.text(1)).toBe('no newline');
  });

  it('finds fences split across frames, and passes long lines on before they end', async () => {
    const fenced = new FencedOutput();
    const task = begin(fenced);
    await feed(fenced, 1, FENCE.slice(0, 10));
    await feed(fenced, 1, `${FENCE.slice(10)}\n`);
    const long = 'x'.repeat(100_000);
    await feed(fenced, 1, long);
    expect(task.text(1).length).toBeGreaterThan(90_000);
    await feed(fenced, 1, `\n${FENCE.slice(0, 5)}`);
    await feed(fenced, 1, `${FENCE.slice(5)}\n`);
    await feed(fenced, 2, `${FENCE}\n${FENCE}\n`);
    await fenced.ended();
    expect(task.text(1)).toBe(`${long}\n`);
  });

  it('turns `<fence> progress n` lines into progress, and other fenced-looking lines into log', async () => {
    const fenced = new FencedOutput();
    const task = begin(fenced);
    await feed(fenced, 1, `${FENCE}\n${FENCE} progress 40\n${FENCE} progress 250\n`);
    await feed(fenced, 1, `${FENCE} progress x\n${'0'.repeat(32)} progress 7\n`);
    expect(task.progress).toEqual([40, 100]);
    expect(task.text(1)).toBe(`${FENCE} progress x\n${'0'.repeat(32)} progress 7\n`);
  });

  it("never gives one task's lines to the next", async () => {
    const fenced = new FencedOutput();
    const first = begin(fenced, 'a'.repeat(32));
    await feed(fenced, 1, `${'a'.repeat(32)}\none\n${'a'.repeat(32)}\n`);
    await feed(fenced, 2, `${'a'.repeat(32)}\n${'a'.repeat(32)}\n`);
    await fenced.ended();
    fenced.finish();
    await feed(fenced, 1, 'late line of the first\n');
    const second = begin(fenced, 'b'.repeat(32));
    // The first task's fence means nothing now.
    await feed(fenced, 1, `${'a'.repeat(32)}\nstill stray\n${'b'.repeat(32)}\ntwo\n`);
    expect(first.text(1)).toBe('one\n');
    expect(second.text(1)).toBe('two\n');
  });

  it('lets the stream go when the task is finished while its writer is full', async () => {
    const fenced = new FencedOutput();
    const stuck = new Writable({ objectMode: true, highWaterMark: 1, write: () => undefined });
    fenced.begin({ fence: FENCE, output: stuck, progress: () => undefined });
    await feed(fenced, 1, `${FENCE}\n`);
    const writes = [feed(fenced, 1, 'a\n'), feed(fenced, 1, 'b\n'), feed(fenced, 1, 'c\n')];
    fenced.finish();
    await Promise.all(writes);
    expect(stuck.writableLength).toBeGreaterThan(0);
  });
});
