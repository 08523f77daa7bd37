import type { Request } from 'express';

/**
 * The route template a request matched (`/2/projects/:projectId/tasks`, never the ids), or
 * `unmatched` for a path no route has: the label of its metrics, span and access line.
 */
export function routeTemplate(req: Request): string {
  const path: unknown = (req.route as { path?: unknown } | undefined)?.path;
  return typeof path === 'string' ? path : 'unmatched';
}
