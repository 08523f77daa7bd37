import type { NextFunction, Request, Response } from 'express';
import { SpanKind, SpanStatusCode, contextOf, startSpan, withSpan } from '@kiln/common';
import { routeTemplate } from './route-template';

/**
 * Express middleware, while tracing is on: a server span per request, named by method and route
 * template (`POST /2/projects/:projectId/tasks`), child of the client's `traceparent` when it
 * sends one, and active for the handler, so that the tasks a request creates carry it. Ended when
 * the answer is done or the client left; a 5xx marks it failed. The path is recorded, never the
 * query string (it may hold an `oauth` token) nor a header.
 */
export function traceRequests() {
  return (req: Request, res: Response, next: NextFunction): void => {
    const header = req.headers.traceparent;
    const span = startSpan(req.method, {
      kind: SpanKind.SERVER,
      parent: contextOf(typeof header === 'string' ? header : undefined),
      attributes: { 'http.request.method': req.method, 'url.path': req.path },
    });
    if (!span) return next();
    res.once('close', () => {
      const route = routeTemplate(req);
      span.updateName(`${req.method} ${route}`);
      span.setAttributes({ 'http.route': route, 'http.response.status_code': res.statusCode });
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    });
    withSpan(span, next);
  };
}
