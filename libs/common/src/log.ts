import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { LoggerService, LogLevel } from '@nestjs/common';
import pino, { Logger as Pino } from 'pino';
import { RedactingLogger, redactSecrets } from './redact';

/** `KILN_LOG_FORMAT`: JSON lines for machines (the default), Nest's coloured lines for humans. */
export type LogFormat = 'json' | 'pretty';
export type KilnLogLevel = 'error' | 'warn' | 'log' | 'debug';

const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

/** Nest's logger levels up to and including `level`. */
export function logLevels(level: KilnLogLevel): LogLevel[] {
  return LEVELS.slice(0, LEVELS.indexOf(level) + 1);
}

/** pino's name of each of Nest's levels. */
const PINO_LEVEL: Record<LogLevel, pino.Level> = {
  fatal: 'fatal',
  error: 'error',
  warn: 'warn',
  log: 'info',
  debug: 'debug',
  verbose: 'trace',
};

/** Fields of a structured line (an access line, a task transition): never a secret or a payload. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

/**
 * Nest's LoggerService writing JSON lines through pino: `level`, `time`, `process`, `pid`,
 * `context`, `msg`, every message passed through redactSecrets. Structured events go through
 * {@link event}.
 */
export class JsonLogger implements LoggerService {
  private readonly pino: Pino;

  constructor(
    private readonly processName: string,
    level: KilnLogLevel,
    private readonly destination: pino.DestinationStream = stdoutDestination(),
  ) {
    this.pino = pino(
      {
        level: PINO_LEVEL[level],
        base: { process: processName, pid: process.pid },
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
        messageKey: 'msg',
      },
      destination,
    );
  }

  log(message: unknown, ...params: unknown[]): void {
    this.write('log', message, params);
  }
  error(message: unknown, ...params: unknown[]): void {
    this.write('error', message, params);
  }
  warn(message: unknown, ...params: unknown[]): void {
    this.write('warn', message, params);
  }
  debug(message: unknown, ...params: unknown[]): void {
    this.write('debug', message, params);
  }
  verbose(message: unknown, ...params: unknown[]): void {
    this.write('verbose', message, params);
  }
  fatal(message: unknown, ...params: unknown[]): void {
    this.write('fatal', message, params);
  }

  /**
   * A structured line: `event` names it; `fields` and `msg` are built by Kiln from ids, names and
   * statuses, never from secrets, so they skip redactSecrets (one line per task inserted: the
   * ingest path).
   */
  event(event: string, fields: LogFields, msg: string): void {
    this.pino.info({ event, ...fields }, msg);
  }

  /**
   * Task transition lines (`event: "task.transition"`) for many tasks at once (a batch of new
   * tasks: up to 100 a request on the ingest path), each line what {@link event} writes for one
   * task once parsed, all written to the same destination in one call. Built for speed, as they
   * are a hundred a request: the fields of a line that are those of the line before (a batch's
   * tasks differ only in their id) are reused as text, and the arrow of `msg` is written as
   * `\u2192`, which keeps the text ASCII (cheaper to write). pino's per-line work, times a
   * hundred, cost ingest about a fifth of its rate; the generic lines about a tenth
   * (docs/benchmarks.md, ingest and observability).
   */
  transitions(list: TransitionFields[], requestId: string | undefined): void {
    if (list.length === 0 || !this.pino.isLevelEnabled('info')) return;
    const head =
      `{"level":"info","time":${JSON.stringify(new Date().toISOString())},` +
      `"process":${JSON.stringify(this.processName)},"pid":${process.pid},` +
      `"event":"task.transition","task_id":`;
    let out = '';
    let previous: TransitionFields | undefined;
    let middle = '';
    let tail = '';
    for (const line of list) {
      if (!previous || !sameButId(previous, line)) {
        middle =
          `,"project_id":${JSON.stringify(line.project_id)},"code":${JSON.stringify(line.code)}` +
          `,"attempt":${JSON.stringify(line.attempt)},"from":${JSON.stringify(line.from)}` +
          `,"to":${JSON.stringify(line.to)}` +
          (line.worker === undefined ? '' : `,"worker":${JSON.stringify(line.worker)}`) +
          (requestId === undefined ? '' : `,"request_id":${JSON.stringify(requestId)}`) +
          ',"msg":"task ';
        tail = `${JSON.stringify(` ${line.from ?? 'new'}`).slice(1, -1)} \\u2192 ${JSON.stringify(line.to).slice(1, -1)}"}\n`;
        previous = line;
      }
      const id = JSON.stringify(line.task_id);
      out += head + id + middle + id.slice(1, -1) + tail;
    }
    this.destination.write(out);
  }

  /**
   * Nest calls `log(message, context)` and `error(message, stack, context)`: the last string is the
   * context (a Logger made with one always passes it), a string that reads as a stack trace is the
   * stack.
   */
  private write(level: LogLevel, message: unknown, params: unknown[]): void {
    const method = PINO_LEVEL[level];
    if (!this.pino.isLevelEnabled(method)) return;
    const rest = [...params];
    const fields: Record<string, string> = {};
    const last = rest[rest.length - 1];
    if (typeof last === 'string' && !isStack(last)) fields.context = rest.pop() as string;
    const stack = rest.find((p): p is string => typeof p === 'string' && isStack(p));
    if (message instanceof Error) {
      fields.stack = redactSecrets(message.stack ?? message.message);
    } else if (stack) {
      fields.stack = redactSecrets(stack);
    }
    this.pino[method](fields, redactSecrets(textOf(message)));
  }
}

/**
 * Standard output, written asynchronously: a line waits only while an earlier write is under way
 * (lines written meanwhile go out together, one system call), never for a buffer to fill. pino
 * writes what is left synchronously when the process exits.
 */
function stdoutDestination() {
  return pino.destination({ dest: 1, sync: false });
}

function isStack(text: string): boolean {
  return /\n\s+at /.test(text);
}

function textOf(message: unknown): string {
  if (typeof message === 'string') return message;
  if (message instanceof Error) return message.message;
  try {
    return JSON.stringify(message) ?? String(message);
  } catch {
    return String(message);
  }
}

/** What an API request carries into what it causes (task transitions): its request id. */
export const requestContext = new AsyncLocalStorage<{ requestId: string }>();

/** The longest request id taken from a client; longer or odd ones are replaced. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The client's `X-Request-Id` when it is sane (≤ 128 of [A-Za-z0-9._:-]), else a new one. */
export function requestIdOf(sent: string | string[] | undefined): string {
  return typeof sent === 'string' && REQUEST_ID.test(sent) ? sent : randomUUID();
}

/** This process's logger; set by kilnLogger when the process starts. */
let current: { name: string; json: JsonLogger | null; pretty: RedactingLogger | null } = {
  name: 'kiln',
  json: null,
  pretty: null,
};

/**
 * The logger of Kiln's processes, up to `level`, secrets redacted: JSON lines (pino) or, with
 * `pretty`, Nest's console lines. Also what {@link logEvent} writes to.
 */
export function kilnLogger(
  processName: string,
  level: KilnLogLevel,
  format: LogFormat = 'json',
): LoggerService {
  if (format === 'pretty') {
    const pretty = new RedactingLogger({ logLevels: logLevels(level) });
    current = { name: processName, json: null, pretty };
    return pretty;
  }
  const json = new JsonLogger(processName, level);
  current = { name: processName, json, pretty: null };
  return json;
}

/**
 * One structured line (`event`, `fields`) from this process: a JSON line, or in the pretty format
 * `msg` and the fields as `key=value`. Nothing before kilnLogger ran (unit tests).
 */
export function logEvent(event: string, fields: LogFields, msg: string): void {
  if (current.json) return current.json.event(event, fields, msg);
  if (current.pretty) {
    const pairs = Object.entries(fields)
      .filter(([, value]) => value !== undefined && value !== null)
      .map(([key, value]) => `${key}=${String(value)}`)
      .join(' ');
    current.pretty.log(redactSecrets(`${msg} ${pairs}`), event);
  }
}

/** The fields of a task transition line. */
export interface TransitionFields {
  task_id: string;
  project_id: string;
  code: string;
  attempt: number;
  from: string | null;
  to: string;
  worker?: string | null;
}

function sameButId(a: TransitionFields, b: TransitionFields): boolean {
  return (
    a.project_id === b.project_id &&
    a.code === b.code &&
    a.attempt === b.attempt &&
    a.from === b.from &&
    a.to === b.to &&
    a.worker === b.worker
  );
}

/** The task transition line (`event: "task.transition"`), with the request id that caused it. */
export function logTransition(fields: TransitionFields): void {
  const requestId = requestContext.getStore()?.requestId;
  logEvent(
    'task.transition',
    { ...fields, request_id: requestId },
    `task ${fields.task_id} ${fields.from ?? 'new'} → ${fields.to}`,
  );
}

/** {@link logTransition} for many tasks at once (a batch of new tasks), in one write. */
export function logTransitions(list: TransitionFields[]): void {
  if (!current.json) {
    for (const fields of list) logTransition(fields);
    return;
  }
  current.json.transitions(list, requestContext.getStore()?.requestId);
}

/** A line about the process itself failing (cannot start, unhandled rejection), redacted. */
export function logFailure(text: string): void {
  if (current.json) current.json.fatal(text);
  else console.error(redactSecrets(text));
}
