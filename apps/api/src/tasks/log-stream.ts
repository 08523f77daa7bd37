import type { Request, Response } from 'express';
import { FollowEvent } from './log-follower';

/** An SSE comment this often keeps idle proxies from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;

/** Whether the client asked for Server-Sent Events rather than plain text. */
export function wantsEventStream(req: Request): boolean {
  return (req.headers.accept ?? '').includes('text/event-stream');
}

/**
 * Writes a followed log to the response as it comes: plain text (chunked, the log exactly as
 * printed), or Server-Sent Events: one `message` per chunk whose data is the chunk's text as a
 * JSON string and whose id is `<attempt>.<seq>` (send it back as `Last-Event-ID` to resume), then
 * one `end` event with `{"status"}`. Stops early when the client goes away, and ends without
 * `end` when `ended` is aborted (the API is stopping: a client resumes elsewhere with
 * `Last-Event-ID`, or re-reads the plain log).
 */
export async function streamLog(
  req: Request,
  res: Response,
  ended: AbortSignal,
  events: (signal: AbortSignal) => AsyncGenerator<FollowEvent, void, undefined>,
): Promise<void> {
  const sse = wantsEventStream(req);
  const closed = new AbortController();
  res.on('close', () => closed.abort());
  const end = (): void => closed.abort();
  if (ended.aborted) end();
  else ended.addEventListener('abort', end, { once: true });
  res.status(200);
  res.setHeader(
    'Content-Type',
    sse ? 'text/event-stream; charset=utf-8' : 'text/plain; charset=utf-8',
  );
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('X-Accel-Buffering', 'no');
  res.flushHeaders();
  const keepalive = sse ? setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS) : undefined;
  try {
    for await (const event of events(closed.signal)) {
      if (closed.signal.aborted) break;
      const text =
        event.kind === 'chunk'
          ? sse
            ? `id: ${event.attempt}.${event.seq}\ndata: ${JSON.stringify(event.data)}\n\n`
            : event.data
          : sse
            ? `event: end\ndata: ${JSON.stringify({ status: event.status })}\n\n`
            : '';
      if (text !== '' && !res.write(text)) {
        await new Promise<void>((resolve) => {
          res.once('drain', resolve);
          res.once('close', resolve);
        });
      }
    }
  } finally {
    ended.removeEventListener('abort', end);
    clearInterval(keepalive);
    res.end();
  }
}
