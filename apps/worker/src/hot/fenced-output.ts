import { setTimeout as sleep } from 'node:timers/promises';
import { Writable } from 'node:stream';
import type { OutputFrame } from '@kiln/docker';

/** Where one task's share of the output goes: its log writer, and its progress. */
export interface FencedTask {
  fence: string;
  /** Takes the task's output frames, in order (a TaskLogWriter). */
  output: Writable;
  /** A `<fence> progress <n>` line on STDOUT. */
  progress(percent: number): void;
}

/** Where a stream stands in the current task: before its start fence, inside, or after its end. */
type Phase = 'before' | 'inside' | 'after';

const NEWLINE = 0x0a;
/** Output no task owns is remembered this far back, for a container that fails to start. */
const STRAY_BYTES = 2048;

/**
 * Splits a hot container's output (the attach stream of its whole life, demuxed) into its tasks'
 * logs by the log fence (docs/hot.md, "Logs: the fence"): each stream's bytes between the line
 * that ends with the task's fence and the next such line belong to that task; all else is no
 * task's and is dropped, but for the last {@link STRAY_BYTES}, kept to explain a failed start.
 *
 * A fence can only end a line, so a line is held back only while its last bytes could still be
 * a fence: memory stays bounded whatever the container prints, however long its lines.
 */
export class FencedOutput extends Writable {
  private task: FencedTask | undefined;
  private fence = Buffer.alloc(0);
  private readonly phase = new Map<1 | 2, Phase>();
  /** Per stream, the bytes of the current line not passed on yet. */
  private readonly held = new Map<1 | 2, Buffer>();
  /** Per stream, whether the current line's start was passed on (it cannot be a progress line). */
  private readonly lineStarted = new Map<1 | 2, boolean>();
  private strayTail = Buffer.alloc(0);
  private endWaiter: (() => void) | undefined;
  /** The container's stream, held while the task's log writer drains. */
  private resume: (() => void) | undefined;

  constructor() {
    super({ objectMode: true, highWaterMark: 16 });
  }

  /** Output from now on is looked at for `task`'s fences. */
  begin(task: FencedTask): void {
    this.task = task;
    this.fence = Buffer.from(task.fence);
    for (const stream of [1, 2] as const) {
      this.phase.set(stream, 'before');
      this.lineStarted.set(stream, false);
    }
  }

  /** Resolves once both streams have shown the task's end fence. */
  ended(): Promise<void> {
    if (this.bothEnded()) return Promise.resolve();
    return new Promise((resolve) => (this.endWaiter = resolve));
  }

  /**
   * Whether both end fences came within `graceMs`; time the log writer holds the stream back
   * (storing the task's output) does not count, up to `blockedMs` in all.
   */
  async endedWithin(graceMs: number, blockedMs: number): Promise<boolean> {
    const ended = this.ended().then(() => true);
    const giveUp = Date.now() + graceMs + blockedMs;
    let left = graceMs;
    while (left > 0) {
      const step = Math.min(left, 100);
      const done = await Promise.race([ended, sleep(step).then(() => false)]);
      if (done) return true;
      if (this.resume === undefined || Date.now() > giveUp) left -= step;
    }
    return false;
  }

  /** The task is over: its output is no longer routed (what follows is stray). */
  finish(): void {
    this.task = undefined;
    this.endWaiter = undefined;
    this.resume?.();
  }

  /** The last output no task owned (start-up lines, mostly), as text. */
  get stray(): string {
    return this.strayTail.toString('utf8').trim();
  }

  override _write(
    frame: OutputFrame,
    _encoding: BufferEncoding,
    done: (error?: Error | null) => void,
  ): void {
    const pending: Buffer[] = [];
    this.take(frame.stream, frame.data, pending);
    const output = this.task?.output;
    if (!output || pending.length === 0) return done();
    // The log writer's backpressure holds the container's stream, as for a cold task.
    let ok = true;
    for (const data of pending) ok = output.write({ stream: frame.stream, data }) && ok;
    if (ok) return done();
    const resume = () => {
      output.off('drain', resume);
      if (this.resume === resume) this.resume = undefined;
      done();
    };
    this.resume = resume;
    output.on('drain', resume);
  }

  private take(stream: 1 | 2, data: Buffer, pending: Buffer[]): void {
    let rest = data;
    const held = this.held.get(stream);
    if (held && held.length > 0) {
      rest = Buffer.concat([held, data]);
      this.held.set(stream, Buffer.alloc(0));
    }
    for (;;) {
      const newline = rest.indexOf(NEWLINE);
      if (newline < 0) break;
      this.line(stream, rest.subarray(0, newline + 1), pending);
      this.lineStarted.set(stream, false);
      rest = rest.subarray(newline + 1);
    }
    this.partial(stream, rest, pending);
  }

  /** A whole line, with its newline. */
  private line(stream: 1 | 2, line: Buffer, pending: Buffer[]): void {
    const phase = this.phase.get(stream);
    const body = trimEnd(line);
    const fenced = this.task !== undefined && this.fence.length > 0 && endsWith(body, this.fence);
    if (phase === 'inside') {
      if (fenced) {
        const before = body.subarray(0, body.length - this.fence.length);
        if (before.length > 0) pending.push(before);
        this.phase.set(stream, 'after');
        if (this.bothEnded()) this.endWaiter?.();
        return;
      }
      if (stream === 1 && !this.lineStarted.get(stream) && this.progressLine(body)) return;
      pending.push(line);
      return;
    }
    if (fenced && phase === 'before') {
      this.phase.set(stream, 'inside');
      return;
    }
    this.keepStray(line);
  }

  /** The start of a line whose end has not come: passed on but for what could become a fence. */
  private partial(stream: 1 | 2, rest: Buffer, pending: Buffer[]): void {
    if (rest.length === 0) return;
    // Held whole while short: it may be a fence, or a progress line.
    const keep = Math.max(this.fence.length, 64);
    if (rest.length <= keep * 2) {
      this.held.set(stream, Buffer.from(rest));
      return;
    }
    const sure = rest.subarray(0, rest.length - keep);
    if (this.phase.get(stream) === 'inside') {
      pending.push(Buffer.from(sure));
      this.lineStarted.set(stream, true);
    } else {
      this.keepStray(sure);
    }
    this.held.set(stream, Buffer.from(rest.subarray(rest.length - keep)));
  }

  /** `<fence> progress <n>`: the task's progress, not a line of its log. */
  private progressLine(body: Buffer): boolean {
    if (!this.task || body.length <= this.fence.length || !startsWith(body, this.fence)) {
      return false;
    }
    const match = /^ progress (\d{1,3})$/.exec(body.subarray(this.fence.length).toString('latin1'));
    if (!match) return false;
    this.task.progress(Math.min(100, Number(match[1])));
    return true;
  }

  private bothEnded(): boolean {
    return this.phase.get(1) === 'after' && this.phase.get(2) === 'after';
  }

  private keepStray(data: Buffer): void {
    const joined = Buffer.concat([this.strayTail, data]);
    this.strayTail = joined.subarray(Math.max(0, joined.length - STRAY_BYTES));
  }
}

/** The line without its newline (and a `\r` before it). */
function trimEnd(line: Buffer): Buffer {
  let end = line.length;
  if (end > 0 && line[end - 1] === NEWLINE) end--;
  if (end > 0 && line[end - 1] === 0x0d) end--;
  return line.subarray(0, end);
}

function endsWith(data: Buffer, suffix: Buffer): boolean {
  return data.length >= suffix.length && data.subarray(data.length - suffix.length).equals(suffix);
}

function startsWith(data: Buffer, prefix: Buffer): boolean {
  return data.length >= prefix.length && data.subarray(0, prefix.length).equals(prefix);
}
