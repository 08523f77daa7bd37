/**
 * One of the process's output streams (STDOUT or STDERR), watched so that a fence or progress
 * line can start a line of its own: the contract lets a fence follow a task's unfinished last
 * line (the worker splits it off), but a line of its own keeps the task's log tidy and a progress
 * line recognisable.
 *
 * Watching means wrapping the stream's `write`, through which `console.*` and
 * `process.stdout.write` go: what bypasses it (`fs.writeSync(1, …)`, a child process sharing the
 * descriptor, a string written in an encoding such as `hex`) is not seen, and a fence may then
 * follow on the same line, which the contract allows.
 */
export class OutputStream {
  private atLineStart = true;

  constructor(private readonly stream: NodeJS.WritableStream) {
    const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
    const watched = (chunk: unknown, ...rest: unknown[]): boolean => {
      this.note(chunk);
      return write(chunk, ...rest);
    };
    stream.write = watched;
  }

  /**
   * Writes `line` as a line of its own, and resolves once it and everything written to the stream
   * before it have been handed to the operating system: a stream writes in order, so the callback
   * of the last write is the flush of all (on Linux, writes to a pipe or file are synchronous
   * anyway; this does not depend on it).
   */
  writeLine(line: string): Promise<void> {
    const text = `${this.atLineStart ? '' : '\n'}${line}\n`;
    return new Promise((resolve, reject) => {
      this.stream.write(text, (error) => (error ? reject(error) : resolve()));
    });
  }

  private note(chunk: unknown): void {
    if (typeof chunk === 'string') {
      if (chunk.length > 0) this.atLineStart = chunk.endsWith('\n');
    } else if (chunk instanceof Uint8Array && chunk.length > 0) {
      this.atLineStart = chunk[chunk.length - 1] === 0x0a;
    }
  }
}

/** STDOUT and STDERR, where the contract's fences go. */
export class TaskOutput {
  readonly stdout: OutputStream;
  readonly stderr: OutputStream;

  constructor(stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream) {
    this.stdout = new OutputStream(stdout);
    this.stderr = new OutputStream(stderr);
  }

  /** The fence line on both streams, resolved once both are flushed. */
  async fence(fence: string): Promise<void> {
    await Promise.all([this.stdout.writeLine(fence), this.stderr.writeLine(fence)]);
  }
}
