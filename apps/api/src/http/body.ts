import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { raw } from 'express';
import { KilnException } from '@kiln/common';

/** Routes whose raw body is the payload (IronWorker's webhook takes any bytes, any Content-Type). */
const RAW_BODY_ROUTES = [/\/tasks\/webhook\/?$/, /^\/2\/projects\/[^/]+\/triggers\/[^/]+\/?$/];
/** Routes that stream their body themselves (an image tarball of gigabytes), unread here. */
const STREAMED_BODY_ROUTES = [/^\/2\/projects\/[^/]+\/codes\/[^/]+\/image\/?$/];

function isRawPayload(req: Request): boolean {
  return RAW_BODY_ROUTES.some((route) => route.test(req.path));
}

function isStreamed(req: Request): boolean {
  return req.method === 'POST' && STREAMED_BODY_ROUTES.some((route) => route.test(req.path));
}

export function isMultipart(req: Request): boolean {
  return (req.headers['content-type'] ?? '').toLowerCase().startsWith('multipart/form-data');
}

/**
 * Reads bodies as bytes, up to `limit`. Multipart bodies are left to the route (multer), which
 * streams them, and so are the bodies of streamed routes; a webhook route takes any body as its
 * payload, multipart included.
 */
export function readBody(limit: number): RequestHandler {
  const reader = raw({ type: () => true, limit });
  return (req, res, next) =>
    (isMultipart(req) && !isRawPayload(req)) || isStreamed(req) ? next() : reader(req, res, next);
}

/**
 * Decodes bodies as JSON whatever their Content-Type, since IronWorker's clients vary: an empty
 * body is `{}` (Python's cancel posts nothing, Go sends `{}` on GET). Webhook routes keep bytes.
 */
export function decodeJson(): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    if (isMultipart(req) || isStreamed(req) || isRawPayload(req)) return next();
    const body: unknown = req.body;
    if (!Buffer.isBuffer(body) || body.length === 0) {
      req.body = {};
      return next();
    }
    try {
      req.body = JSON.parse(body.toString('utf8')) as unknown;
      next();
    } catch (error) {
      next(KilnException.badRequest(`Malformed JSON body: ${(error as Error).message}`));
    }
  };
}
