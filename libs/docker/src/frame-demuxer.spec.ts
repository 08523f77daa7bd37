import { FrameDemuxer, OutputFrame } from './frame-demuxer';

function frame(stream: number, text: string): Buffer {
  const body = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

async function demux(chunks: Buffer[]): Promise<OutputFrame[]> {
  const demuxer = new FrameDemuxer();
  const frames: OutputFrame[] = [];
  demuxer.on('data', (f: OutputFrame) => frames.push(f));
  const done = new Promise((resolve) => demuxer.on('end', resolve));
  for (const chunk of chunks) demuxer.write(chunk);
  demuxer.end();
  await done;
  return frames;
}

describe('FrameDemuxer', () => {
  it('splits frames in order, whatever the chunking', async () => {
    const bytes = Buffer.concat([frame(1, 'out 1\n'), frame(2, 'err\n'), frame(1, 'out 2\n')]);
    const oneByteAtATime = [...bytes].map((b) => Buffer.from([b]));
    for (const chunks of [[bytes], oneByteAtATime]) {
      const frames = await demux(chunks);
      expect(frames.map((f) => [f.stream, f.data.toString()])).toEqual([
        [1, 'out 1\n'],
        [2, 'err\n'],
        [1, 'out 2\n'],
      ]);
    }
  });

  it('passes a huge frame on in pieces instead of buffering it whole', async () => {
    const big = frame(1, 'x'.repeat(1_000_000));
    const chunks = Array.from({ length: Math.ceil(big.length / 16384) }, (_, i) =>
      big.subarray(i * 16384, (i + 1) * 16384),
    );
    const frames = await demux(chunks);
    expect(frames.length).toBeGreaterThan(1);
    expect(frames.every((f) => f.stream === 1)).toBe(true);
    expect(frames.reduce((n, f) => n + f.data.length, 0)).toBe(1_000_000);
  });
});
