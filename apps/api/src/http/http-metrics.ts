import type { NextFunction, Request, Response } from 'express';
import { performance } from 'node:perf_hooks';
import type { KilnMetrics } from '@kiln/metrics';
import { routeTemplate } from './route-template';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * Express middleware: `kiln_http_requests_total` and `kiln_http_request_duration_seconds` by
 * method, route template (`/2/projects/:projectId/tasks`, never the ids themselves; `unmatched`
 * for a path no route has) and status, counted when the answer is done or the client left.
 */
export function httpMetrics(metrics: KilnMetrics) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const started = performance.now();
    res.once('close', () => {
      const labels = {
        method: METHODS.has(req.method) ? req.method : 'other',
        route: routeTemplate(req),
        status: String(res.statusCode),
      };
      metrics.httpRequests.inc(labels);
      metrics.httpDuration.observe(labels, (performance.now() - started) / 1000);
    });
    next();
  };
}
