import { Logger } from '@nestjs/common';
import { StringDecoder } from 'node:string_decoder';
import { Writable } from 'node:stream';
import { backoffMs, stripNul } from '@kiln/common';
import type { OutputFrame } from '@kiln/docker';
import { LogChunk, LogStream } from '@kiln/tasks';

/** Where finished chunks go (Postgres in production; an array in unit tests). */
export type LogSink = (chunks: LogChunk[]) => Promise<void>;

export interface LogWriterOptions {
  /** Cap on stored bytes: the first half and the last half of the output are kept. */
  maxBytes: number;
  /** Largest stored chunk. Default 64 KiB. */
  chunkBytes?: number;
  /** Pending output is flushed at least this often (output after a quiet spell at once). Default 250 ms. */
  flushIntervalMs?: number;
  /**
   * The first output waits for the flush timer instead of being stored at once: a task that ends
   * sooner stores its whole log with its outcome, one statement fewer (hot tasks, docs/hot.md).
   */
  holdFirstOutput?: boolean;
}

const STDERR_TAIL = 1024;

interface Piece {
  stream: LogStream;
  text: string;
  bytes: number;
}

/**
 * Turns a container's output frames into stored log chunks, in print order: decoded as UTF-8
 * (invalid sequences become U+FFFD, NULs become ␀), flushed every `flushIntervalMs` so the log
 * grows while the task runs, and capped at `maxBytes` by keeping the head and the tail with a
 * marker between. Memory is bounded whatever the task prints: a flush in progress holds back the
 * stream (Writable backpressure), the tail is a bounded window, and output kept through an
 * outage is within the cap.
 */
export class TaskLogWriter extends Writable {
  private readonly logger = new Logger(TaskLogWriter.name);
  private readonly decoders = new Map<LogStream, StringDecoder>();
  private readonly headLimit: number;
  private readonly tailLimit: number;
  private readonly chunkBytes: number;
  private readonly flushIntervalMs: number;
  private pending: Piece[] = [];
  private pendingBytes = 0;
  private headBytes = 0;
  private tail: Piece[] = [];
  private tailBytes = 0;
  private omittedBytes = 0;
  private truncating = false;
  private seq = 0;
  private producedBytes = 0;
  private unstoredChunks: LogChunk[] = [];
  private failures = 0;
  private retryAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushedAt = 0;
  private flushing: Promise<void> = Promise.resolve();
  private lastStderr = '';

  constructor(
    private readonly sink: LogSink,
    options: LogWriterOptions,
  ) {
    super({ objectMode: true, highWaterMark: 16 });
    this.headLimit = Math.floor(options.maxBytes / 2);
    this.tailLimit = options.maxBytes - this.headLimit;
    this.chunkBytes = options.chunkBytes ?? 64 * 1024;
    this.flushIntervalMs = options.flushIntervalMs ?? 250;
    if (options.holdFirstOutput) this.flushedAt = Date.now();
  }

  /** Bytes of the log so far (after the cap, stored or kept to store), i.e. the task's `log_size`. */
  get size(): number {
    return this.producedBytes;
  }

  /** The last ~1 KiB the task wrote to STDERR, where a failed write or a killed process says why. */
  get stderrTail(): string {
    return this.lastStderr;
  }

  override _write(
    frame: OutputFrame,
    _encoding: BufferEncoding,
    done: (error?: Error | null) => void,
  ): void {
    const stream = frame.stream === 2 ? LogStream.Stderr : LogStream.Stdout;
    this.accept(stream, this.decoder(stream).write(frame.data));
    if (this.pendingBytes >= this.chunkBytes) {
      // Hold the container's stream until this flush is stored: backpressure, bounded memory.
      this.flush().then(() => done(), done);
    } else if (!this.timer && Date.now() - this.flushedAt >= this.flushIntervalMs) {
      // Output after a quiet spell is stored (and published to followers) at once; only bursts
      // wait for the timer, so a task printing a line a second is seen a line a second.
      this.flush().catch(() => undefined);
      done();
    } else {
      this.timer ??= setTimeout(() => {
        this.flush().catch(() => undefined);
      }, this.flushIntervalMs);
      done();
    }
  }

  override _final(done: (error?: Error | null) => void): void {
    this.closeOutput();
    this.flush().then(() => done(), done);
  }

  /**
   * For a task whose output is over but whose stream goes on (a hot container's, docs/hot.md):
   * once every frame written so far is taken in, the log's last chunks, and any kept through an
   * outage, not stored but handed over to go with the outcome, in one statement with it. The
   * writer takes nothing after.
   */
  async takeRest(): Promise<LogChunk[]> {
    // Frames are taken in order: the callback of an empty one comes after all before it.
    await new Promise<void>((resolve) =>
      this.write({ stream: 1, data: Buffer.alloc(0) } satisfies OutputFrame, () => resolve()),
    );
    this.closeOutput();
    const last = this.takePending();
    await this.flushing;
    const chunks = [...this.unstoredChunks, ...last];
    this.unstoredChunks = [];
    return chunks;
  }

  /** The output is over: the decoders' last bytes, the omission marker and the kept tail. */
  private closeOutput(): void {
    for (const [stream, decoder] of this.decoders) this.accept(stream, decoder.end());
    if (this.omittedBytes > 0) {
      this.push0({
        stream: LogStream.Kiln,
        text: `\n[kiln: ${this.omittedBytes} bytes of output omitted]\n`,
      });
      this.omittedBytes = 0;
    }
    for (const piece of this.tail) this.push0(piece);
    this.tail = [];
  }

  private decoder(stream: LogStream): StringDecoder {
    let decoder = this.decoders.get(stream);
    if (!decoder) {
      decoder = new StringDecoder('utf8');
      this.decoders.set(stream, decoder);
    }
    return decoder;
  }

  private accept(stream: LogStream, raw: string): void {
    if (raw === '') return;
    let text = stripNul(raw);
    if (stream === LogStream.Stderr) this.lastStderr = (this.lastStderr + text).slice(-STDERR_TAIL);
    if (!this.truncating) {
      const room = this.headLimit - this.headBytes;
      const bytes = Buffer.byteLength(text);
      if (bytes <= room) {
        this.headBytes += bytes;
        this.push0({ stream, text });
        return;
      }
      const head = cutToBytes(text, room);
      this.headBytes += Buffer.byteLength(head);
      if (head) this.push0({ stream, text: head });
      text = text.slice(head.length);
      this.truncating = true;
    }
    this.keepInTail({ stream, text, bytes: Buffer.byteLength(text) });
  }

  /** The tail is a sliding window of the last `tailLimit` bytes. */
  private keepInTail(piece: Piece): void {
    this.tail.push(piece);
    this.tailBytes += piece.bytes;
    while (this.tailBytes > this.tailLimit && this.tail.length > 0) {
      const first = this.tail[0];
      const excess = this.tailBytes - this.tailLimit;
      if (first.bytes <= excess) {
        this.tail.shift();
        this.tailBytes -= first.bytes;
        this.omittedBytes += first.bytes;
      } else {
        const dropped = cutToBytes(first.text, excess, true);
        const droppedBytes = Buffer.byteLength(dropped);
        first.text = first.text.slice(dropped.length);
        first.bytes -= droppedBytes;
        this.tailBytes -= droppedBytes;
        this.omittedBytes += droppedBytes;
        if (droppedBytes === 0) break;
      }
    }
  }

  /** Queues output for the next flush, merging a stream's consecutive output into chunks. */
  private push0(piece: { stream: LogStream; text: string }): void {
    let text = piece.text;
    while (text !== '') {
      const last = this.pending[this.pending.length - 1];
      const room = last && last.stream === piece.stream ? this.chunkBytes - last.bytes : 0;
      const fits = room > 0 ? cutToBytes(text, room) : '';
      if (fits !== '') {
        const bytes = Buffer.byteLength(fits);
        last.text += fits;
        last.bytes += bytes;
        this.pendingBytes += bytes;
        text = text.slice(fits.length);
        continue;
      }
      const part = cutToBytes(text, this.chunkBytes) || String.fromCodePoint(text.codePointAt(0)!);
      const bytes = Buffer.byteLength(part);
      this.pending.push({ stream: piece.stream, text: part, bytes });
      this.pendingBytes += bytes;
      text = text.slice(part.length);
    }
  }

  /**
   * Stores pending pieces; flushes run one after another so chunks keep their order. Never
   * fails: output that could not be stored is kept (see {@link store}).
   */
  private flush(force = false): Promise<void> {
    const chunks = this.takePending();
    if (chunks.length === 0 && !(force && this.unstoredChunks.length > 0)) return this.flushing;
    this.flushing = this.flushing.then(() => this.store(chunks, force));
    return this.flushing;
  }

  /** The pending pieces as numbered chunks, counted in the log's size. */
  private takePending(): LogChunk[] {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushedAt = Date.now();
    const pieces = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.producedBytes += pieces.reduce((sum, piece) => sum + piece.bytes, 0);
    return pieces.map((piece) => ({ seq: ++this.seq, stream: piece.stream, data: piece.text }));
  }

  /**
   * Writes the kept chunks and `chunks`. A failed write (Postgres away) keeps them in memory —
   * bounded by the cap, since only output under the cap becomes chunks — and the next flush
   * after a backoff tries again; meanwhile flushes only add to what is kept, so the container's
   * stream is never held by an outage. Whatever is still kept at the end goes with the task's
   * outcome ({@link takeUnstored}).
   */
  private async store(chunks: LogChunk[], force: boolean): Promise<void> {
    // Kept chunks grow in place: a long outage costs no copy of the kept log per flush.
    for (const chunk of chunks) this.unstoredChunks.push(chunk);
    if (this.unstoredChunks.length === 0 || (!force && Date.now() < this.retryAt)) return;
    try {
      await this.sink(this.unstoredChunks);
      this.unstoredChunks = [];
      this.failures = 0;
    } catch (error) {
      this.failures++;
      this.retryAt = Date.now() + backoffMs(this.failures);
      if (this.failures === 1) {
        this.logger.warn(`log chunks kept until they can be stored: ${(error as Error).message}`);
      }
    }
  }

  /**
   * Once the output has ended: tries a last write, then hands over the chunks that are still
   * not stored, in print order, for the outcome to store with the final status.
   */
  async takeUnstored(): Promise<LogChunk[]> {
    await this.flush(true);
    const chunks = this.unstoredChunks;
    this.unstoredChunks = [];
    return chunks;
  }
}

/**
 * The longest prefix of `text` that is at most `maxBytes` of UTF-8, never splitting a character
 * (nor a surrogate pair). With `atLeast`, the shortest prefix of at least `maxBytes` instead.
 */
export function cutToBytes(text: string, maxBytes: number, atLeast = false): string {
  if (maxBytes <= 0) return '';
  let bytes = 0;
  let index = 0;
  while (index < text.length) {
    const code = text.codePointAt(index)!;
    const width = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
    const units = code >= 0x10000 ? 2 : 1;
    if (!atLeast && bytes + width > maxBytes) break;
    bytes += width;
    index += units;
    if (atLeast && bytes >= maxBytes) break;
  }
  return text.slice(0, index);
}
