import { LogStream } from '@kiln/tasks';

/** One line of a task's output, as a drain receives it. */
export interface DrainLine {
  taskId: string;
  projectId: string;
  code: string;
  stream: 'stdout' | 'stderr' | 'kiln';
  line: string;
  /** When the chunk holding it was stored (within the worker's flush interval of the print). */
  time: Date;
}

export function streamName(stream: LogStream): DrainLine['stream'] {
  switch (stream) {
    case LogStream.Stdout:
      return 'stdout';
    case LogStream.Stderr:
      return 'stderr';
    case LogStream.Kiln:
      return 'kiln';
  }
}

/**
 * The lines of a chunk: split at `\n` (a `\r` before it dropped), the empty piece after a final
 * newline left out. A line printed across two of the worker's flushes arrives as two lines.
 */
export function splitLines(data: string): string[] {
  const lines = data.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
}

/** An HTTPS drain's body: one JSON object a line (`application/x-ndjson`). */
export function jsonLines(lines: DrainLine[]): string {
  return lines
    .map((l) =>
      JSON.stringify({
        task_id: l.taskId,
        code: l.code,
        stream: l.stream,
        line: l.line,
        time: l.time.toISOString(),
        project_id: l.projectId,
      }),
    )
    .join('\n')
    .concat('\n');
}

/** RFC 5424 facility `user` (1); severities info (6), err (3), notice (5). */
const SEVERITY: Record<DrainLine['stream'], number> = { stdout: 6, stderr: 3, kiln: 5 };
const FACILITY_USER = 1;
/** RFC 5424 §6.3.2: 32473 is the enterprise number set aside for examples and documentation. */
export const SYSLOG_SD_ID = 'kiln@32473';

/** APP-NAME: printable US-ASCII, at most 48 characters, `-` when empty. */
function appName(code: string): string {
  const printable = code.replace(/[^\x21-\x7e]/g, '_').slice(0, 48);
  return printable === '' ? '-' : printable;
}

function sdValue(value: string): string {
  return value.replace(/[\\"\]]/g, (c) => `\\${c}`);
}

/**
 * One RFC 5424 message: the code as APP-NAME, the task id as PROCID, the stream as MSGID and
 * severity (stdout info, stderr err, Kiln's own lines notice), and all three with the project in
 * structured data.
 */
export function syslogMessage(line: DrainLine, hostname = 'kiln'): string {
  const pri = FACILITY_USER * 8 + SEVERITY[line.stream];
  const sd =
    `[${SYSLOG_SD_ID} project_id="${sdValue(line.projectId)}" task_id="${sdValue(line.taskId)}"` +
    ` code="${sdValue(line.code)}" stream="${line.stream}"]`;
  return `<${pri}>1 ${line.time.toISOString()} ${hostname} ${appName(line.code)} ${line.taskId} ${line.stream} ${sd} ${line.line}`;
}

/** RFC 6587 octet-counting framing: `<length in bytes> <message>`. */
export function octetCounted(message: string): string {
  return `${Buffer.byteLength(message)} ${message}`;
}
