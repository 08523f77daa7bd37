import type { NextFunction, Request, Response } from 'express';
import { performance } from 'node:perf_hooks';
import { logEvent, redactSecrets, requestContext, requestIdOf } from '@kiln/common';
import { routeTemplate } from './route-template';

/** The longest path an access line carries (a path is ids and names, never that long). */
const PATH_MAX = 512;
const PROJECT = /^\/2\/projects\/([A-Za-z0-9_-]{1,64})(?:\/|$)/;

/**
 * Express middleware, first of all: the request's id (the client's `X-Request-Id` when sane,
 * else a new one) answered in `X-Request-Id` and carried (AsyncLocalStorage) into what the
 * request causes, and one access line (`event: "http.request"`) when the answer is done or the
 * client left: a follower's or an upload's line comes when it ends. The path is logged without
 * its query string (`?oauth=` tokens, trigger `?secret=`); headers and bodies never.
 */
export function accessLog() {
  return (req: Request, res: Response, next: NextFunction): void => {
    const started = performance.now();
    const requestId = requestIdOf(req.headers['x-request-id']);
    res.setHeader('X-Request-Id', requestId);
    res.once('close', () => {
      const path = pathOf(req.originalUrl);
      const status = res.writableFinished ? res.statusCode : 499;
      logEvent(
        'http.request',
        {
          request_id: requestId,
          method: req.method,
          route: routeTemplate(req),
          path,
          status,
          duration_ms: Math.round((performance.now() - started) * 10) / 10,
          project_id: PROJECT.exec(path)?.[1],
        },
        `${req.method} ${path} ${status}`,
      );
    });
    requestContext.run({ requestId }, next);
  };
}

/** The path of `url` without its query string, secrets redacted, at most PATH_MAX characters. */
export function pathOf(url: string): string {
  const path = url.split('?', 1)[0].split('#', 1)[0];
  return redactSecrets(path.length > PATH_MAX ? `${path.slice(0, PATH_MAX)}…` : path);
}
