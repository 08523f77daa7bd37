import { SetMetadata } from '@nestjs/common';
import type { Request, Response } from 'express';
import type { Socket } from 'node:net';
import { KilnException } from '@kiln/common';
import type { KilnConfig } from '@kiln/config';
import { MAX_SCHEDULES_PER_REQUEST } from '@kiln/schedules';
import { MAX_TASKS_PER_REQUEST } from '@kiln/tasks';

/**
 * How a route's body is read (`@BodyKind(…)`; JSON up to `KILN_MAX_BODY_BYTES` when unsaid):
 * - `json`: bytes up to the JSON cap, decoded as JSON whatever the Content-Type;
 * - `payload`: the same, with room for one task payload (`PUT schedules/{id}`);
 * - `bulk`: room for a full batch of payloads (`POST tasks`, `POST schedules`);
 * - `raw`: bytes up to the payload cap, kept as a Buffer (the task webhook, trigger URLs);
 * - `streamed`: left unread for the route, which streams it (an image tarball of gigabytes).
 * Multipart bodies of `json` routes are left to multer, which streams them too.
 */
export type BodyKindName = 'json' | 'payload' | 'bulk' | 'raw' | 'streamed';

export const BODY_KIND = 'kiln:body-kind';

/** Declares how the route's body is read (see {@link BodyKindName}). */
export const BodyKind = (kind: BodyKindName) => SetMetadata(BODY_KIND, kind);

/**
 * An unauthenticated request's body is read only to find a token in it (PHP's client adds an
 * `oauth` field), and never more than this: a larger one is a 401 unread.
 */
export const PRE_AUTH_BODY_MAX_BYTES = 64 * 1024;

/**
 * What a task or schedule needs beside its payload in a bulk request: its other fields (code
 * name ≤ 255 bytes, label ≤ 1 KiB, cluster, webhook URL ≤ 2 KiB, numbers) and the JSON around them.
 */
const FRAMING_PER_ITEM = 4096;

/** Bytes each kind of body may have, from the configuration. */
export interface BodyCaps {
  json: number;
  payload: number;
  bulk: number;
  raw: number;
}

/**
 * A payload is capped in characters of its decoded string (`KILN_PAYLOAD_MAX_BYTES`), and JSON
 * escaping may double it on the wire (every `"` and `\` of a JSON payload is escaped), so a body
 * holding payloads has room for twice their size, plus framing per item.
 */
export function bodyCaps(config: KilnConfig): BodyCaps {
  const payload = config.tasks.maxPayloadBytes;
  const perItem = 2 * payload + FRAMING_PER_ITEM;
  const items = Math.max(MAX_TASKS_PER_REQUEST, MAX_SCHEDULES_PER_REQUEST);
  const json = config.api.maxBodyBytes;
  return {
    json,
    payload: Math.max(json, perItem + 16 * FRAMING_PER_ITEM),
    bulk: Math.max(json, items * perItem),
    raw: payload,
  };
}

export interface BodyTiming {
  /** Longest wait for the next byte. */
  idleMs: number;
  /** Longest time for the whole body. */
  totalMs: number;
}

const READ = Symbol('kiln:body-read');

/** Whether the body of `req` was read already (by the guard, looking for a token in it). */
export function bodyWasRead(req: Request): boolean {
  return (req as Request & { [READ]?: boolean })[READ] === true;
}

function markRead(req: Request): void {
  (req as Request & { [READ]?: boolean })[READ] = true;
}

export function isMultipart(req: Request): boolean {
  return (req.headers['content-type'] ?? '').toLowerCase().startsWith('multipart/form-data');
}

/** Whether the request has a body at all (a length above 0, or a chunked one). */
export function hasBody(req: Request): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && length !== '0';
}

/**
 * Reads the body as bytes, at most `limit` of them: a declared Content-Length over it is refused
 * before a byte is read, a chunked body is cut off once past it; either way with `tooLarge()`.
 * A client that sends nothing for `idleMs`, or has not sent all after `totalMs`, gets a 408.
 * The caller's error answer closes the connection (see {@link closeIfUnread}), so the rest of a
 * refused body is not read, beyond what arrives while the close lingers.
 */
export function readBodyBytes(
  req: Request,
  limit: number,
  timing: BodyTiming,
  tooLarge: () => KilnException,
): Promise<Buffer> {
  markRead(req);
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return Promise.reject(tooLarge());
  if (!hasBody(req) || req.readableEnded) return Promise.resolve(Buffer.alloc(0));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let idle: NodeJS.Timeout | undefined;
    const armIdle = (): void => {
      clearTimeout(idle);
      idle = setTimeout(
        () => fail(timedOut(`no data for ${seconds(timing.idleMs)} s`)),
        timing.idleMs,
      );
    };
    const total = setTimeout(
      () => fail(timedOut(`not all sent within ${seconds(timing.totalMs)} s`)),
      timing.totalMs,
    );
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) return fail(tooLarge());
      chunks.push(chunk);
      armIdle();
    };
    const onEnd = (): void => {
      stop();
      resolve(Buffer.concat(chunks, size));
    };
    const onAborted = (): void =>
      fail(KilnException.badRequest('The request body was cut off before its end'));
    const onClose = (): void => {
      if (!req.complete) onAborted();
    };
    const listeners: [string, (chunk: Buffer) => void][] = [
      ['data', onData],
      ['end', onEnd],
      ['error', onAborted],
      ['aborted', onAborted],
      ['close', onClose],
    ];
    const stop = (): void => {
      clearTimeout(idle);
      clearTimeout(total);
      for (const [event, listener] of listeners) req.off(event, listener);
    };
    const fail = (error: KilnException): void => {
      stop();
      req.pause();
      reject(error);
    };
    for (const [event, listener] of listeners) req.on(event, listener);
    armIdle();
  });
}

/**
 * Decodes a JSON body whatever its Content-Type, since IronWorker's clients vary: an empty body
 * is `{}` (Python's cancel posts nothing, Go sends `{}` on GET).
 */
export function decodeJson(bytes: Buffer): unknown {
  if (bytes.length === 0) return {};
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch (error) {
    throw KilnException.badRequest(`Malformed JSON body: ${(error as Error).message}`);
  }
}

/**
 * How long a connection whose request body was refused still takes (and drops) what the client
 * sends after the answer went out, before it is closed. A client busy sending its body may not
 * read the answer yet; closing at once, with its data unread, would reset the connection and the
 * client would see a broken pipe instead of the 413 or 401 (nginx's "lingering close").
 */
export const LINGER_MS = 2000;

/**
 * Before an answer goes out while the request's body is still coming (refused before it was
 * read, or cut off): `Connection: close`, so Node closes the connection after the answer instead
 * of reading the rest of the body, however long, to keep it alive. The close lingers: our side is
 * shut at once (the client sees the answer end), what still arrives is dropped for at most
 * {@link LINGER_MS}, then the connection goes.
 */
export function closeIfUnread(req: Request, res: Response): void {
  if (req.complete || res.headersSent) return;
  res.setHeader('Connection', 'close');
  // Node ends a `Connection: close` exchange with `socket.destroySoon()` once the answer is sent.
  const socket = req.socket as Socket & { destroySoon?: () => void };
  socket.destroySoon = () => {
    if (socket.writable) socket.end();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref();
    socket.once('end', () => {
      clearTimeout(timer);
      socket.destroy();
    });
    req.resume();
  };
}

/**
 * An upload (streamed or multipart) reads its body for as long as it takes, but a client that
 * sends nothing for `idleMs` is cut off with a 408. Counted on the socket's bytes, so that the
 * route's own reading is not disturbed; a pause that the route makes (back-pressure while it
 * writes the spool) is not the client's silence.
 */
export function watchUploadIdle(req: Request, res: Response, idleMs: number): void {
  const socket = req.socket;
  let seen = socket.bytesRead;
  let quietSince = Date.now();
  const timer = setInterval(
    () => {
      if (req.complete || res.writableEnded || socket.destroyed) return clearInterval(timer);
      if (socket.bytesRead !== seen || socket.isPaused()) {
        seen = socket.bytesRead;
        quietSince = Date.now();
        return;
      }
      if (Date.now() - quietSince < idleMs) return;
      clearInterval(timer);
      const msg = `Request body timed out: no data for ${seconds(idleMs)} s`;
      if (res.headersSent) {
        req.destroy();
        return;
      }
      // Once the answer is out the request is destroyed: the route reading it then fails and
      // cleans up (its spool), where Node, the answer being sent, would no longer end it.
      res.once('finish', () => req.destroy());
      res
        .status(408)
        .set('Connection', 'close')
        .type('application/json')
        .end(JSON.stringify({ msg }));
    },
    Math.min(1000, Math.max(50, idleMs / 4)),
  );
  timer.unref();
  res.once('close', () => clearInterval(timer));
}

function timedOut(why: string): KilnException {
  return KilnException.requestTimeout(`Request body timed out: ${why}`);
}

function seconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}
