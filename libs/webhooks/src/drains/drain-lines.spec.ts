import { LogStream } from '@kiln/tasks';
import {
  DrainLine,
  jsonLines,
  octetCounted,
  splitLines,
  streamName,
  syslogMessage,
} from './drain-lines';

const line = (over: Partial<DrainLine> = {}): DrainLine => ({
  taskId: '0123456789abcdef01234567',
  projectId: 'fedcba9876543210fedcba98',
  code: 'hello',
  stream: 'stdout',
  line: 'hi there',
  time: new Date('2026-12-01T04:00:00.123Z'),
  ...over,
});

describe('drain lines', () => {
  it('splits chunks at newlines, dropping a CR before one and the empty piece after the last', () => {
    expect(splitLines('a\nb\r\n\nc')).toEqual(['a', 'b', '', 'c']);
    expect(splitLines('a\n')).toEqual(['a']);
    expect(splitLines('')).toEqual([]);
  });

  it('names the streams', () => {
    expect([LogStream.Stdout, LogStream.Stderr, LogStream.Kiln].map(streamName)).toEqual([
      'stdout',
      'stderr',
      'kiln',
    ]);
  });

  it('writes one JSON object a line', () => {
    const body = jsonLines([line(), line({ stream: 'stderr', line: 'oops "quoted"' })]);
    expect(body.endsWith('\n')).toBe(true);
    expect(
      body
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual([
      {
        task_id: '0123456789abcdef01234567',
        code: 'hello',
        stream: 'stdout',
        line: 'hi there',
        time: '2026-12-01T04:00:00.123Z',
        project_id: 'fedcba9876543210fedcba98',
      },
      expect.objectContaining({ stream: 'stderr', line: 'oops "quoted"' }),
    ]);
  });

  it('writes RFC 5424 messages: code as APP-NAME, task as PROCID, stream as MSGID and severity', () => {
    expect(syslogMessage(line())).toBe(
      '<14>1 2026-12-01T04:00:00.123Z kiln hello 0123456789abcdef01234567 stdout ' +
        '[kiln@32473 project_id="fedcba9876543210fedcba98" task_id="0123456789abcdef01234567" code="hello" stream="stdout"] hi there',
    );
    expect(syslogMessage(line({ stream: 'stderr' }))).toMatch(/^<11>1 /);
    expect(syslogMessage(line({ stream: 'kiln' }))).toMatch(/^<13>1 /);
  });

  it('keeps APP-NAME printable ASCII of at most 48 and escapes structured data values', () => {
    const message = syslogMessage(line({ code: `my code]"\\é${'x'.repeat(60)}` }));
    const app = message.split(' ')[3];
    expect(app).toMatch(/^[\x21-\x7e]{48}$/);
    expect(app.startsWith('my_code]"\\_')).toBe(true);
    expect(message).toContain('code="my code\\]\\"\\\\é');
  });

  it('frames by octet count (bytes, not characters)', () => {
    expect(octetCounted('héllo')).toBe('6 héllo');
  });
});
