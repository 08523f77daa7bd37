import { Transform, TransformCallback } from 'node:stream';

export interface OutputFrame {
  /** 1 = STDOUT, 2 = STDERR. */
  stream: 1 | 2;
  data: Buffer;
}

/**
 * Splits Docker's multiplexed attach stream (8-byte header: stream type, 3 zero bytes, big-endian
 * length; then the payload) into frames, in order. Frames are passed on as they arrive, so memory
 * holds at most one partial frame.
 */
export class FrameDemuxer extends Transform {
  private pending: Buffer = Buffer.alloc(0);

  constructor() {
    super({ readableObjectMode: true });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 8) {
      const type = this.pending[0];
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) {
        // A large frame: pass on what has arrived so far instead of buffering it all.
        if (this.pending.length > 8 + 65536 && (type === 1 || type === 2)) {
          const available = this.pending.subarray(8);
          this.push({ stream: type, data: Buffer.from(available) } satisfies OutputFrame);
          const header = Buffer.alloc(8);
          header[0] = type;
          header.writeUInt32BE(size - available.length, 4);
          this.pending = header;
        }
        break;
      }
      const data = this.pending.subarray(8, 8 + size);
      if ((type === 1 || type === 2) && size > 0) {
        this.push({ stream: type, data: Buffer.from(data) } satisfies OutputFrame);
      }
      this.pending = this.pending.subarray(8 + size);
    }
    done();
  }
}
