import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';

/** Where `npm run build` puts the dashboard (scripts/build-ui.mjs), from dist/apps/api/src/ui. */
export const DASHBOARD_DIR = join(__dirname, '..', '..', '..', '..', 'ui');

/**
 * What the browser may do with a dashboard page: its own scripts, styles, images and API, and
 * nothing inline, from elsewhere, or in a frame (the dashboard holds a signed-in session).
 */
export const DASHBOARD_HEADERS: Record<string, string> = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json',
};

interface DashboardFile {
  body: Buffer;
  type: string;
  /** Named by its content's hash (`assets/app-XXXXXXXX.js`): cached for good. */
  hashed: boolean;
}

/** Every file of the built dashboard by its URL path (`/ui/...`), read once at start-up. */
function loadFiles(dir: string): Map<string, DashboardFile> {
  const files = new Map<string, DashboardFile>();
  if (!existsSync(dir)) return files;
  const walk = (at: string): void => {
    for (const name of readdirSync(at)) {
      const path = join(at, name);
      if (statSync(path).isDirectory()) {
        walk(path);
        continue;
      }
      const url = `/ui/${relative(dir, path).split(sep).join('/')}`;
      files.set(url, {
        body: readFileSync(path),
        type: TYPES[extname(name)] ?? 'application/octet-stream',
        hashed: /^\/ui\/assets\/.+-[A-Z0-9]{8,}\.\w+$/.test(url),
      });
    }
  };
  walk(dir);
  return files;
}

function notFound(res: Response, msg: string, status = 404): void {
  res.status(status).type('application/json').send(JSON.stringify({ msg }));
}

/**
 * Serves the dashboard, a single-page app: its files under `/ui/`, `index.html` for any other
 * `/ui/...` path without a file extension (the app routes it), and `/` redirected to `/ui/`.
 * Every `/ui` answer (the session routes' included) carries {@link DASHBOARD_HEADERS}. Only
 * GET/HEAD are answered here; everything else goes on to the API's routes.
 */
export function serveDashboard(dir = DASHBOARD_DIR): RequestHandler {
  const files = loadFiles(dir);
  return (req: Request, res: Response, next: NextFunction) => {
    const path = req.path;
    const read = req.method === 'GET' || req.method === 'HEAD';
    if (path === '/' && read) {
      res.redirect(302, '/ui/');
      return;
    }
    if (path !== '/ui' && !path.startsWith('/ui/')) return next();
    res.set(DASHBOARD_HEADERS);
    if (!read || path === '/ui/session') return next();
    const index = files.get('/ui/index.html');
    if (!index) return notFound(res, 'The dashboard is not built: run `npm run build`', 503);
    const file = files.get(path) ?? (extname(path) === '' ? index : undefined);
    if (!file) return notFound(res, 'Not found');
    res.set({
      'Content-Type': file.type,
      'Cache-Control': file.hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    res.status(200).end(req.method === 'HEAD' ? undefined : file.body);
  };
}
