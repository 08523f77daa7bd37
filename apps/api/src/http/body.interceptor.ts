import { CallHandler, ExecutionContext, Inject, Injectable, NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import type { Observable } from 'rxjs';
import { ErrorCode, KilnException } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import {
  BODY_KIND,
  BodyCaps,
  BodyKindName,
  BodyTiming,
  PRE_AUTH_BODY_MAX_BYTES,
  bodyCaps,
  bodyWasRead,
  decodeJson,
  hasBody,
  isMultipart,
  readBodyBytes,
  watchUploadIdle,
} from './body';

/**
 * Reads request bodies by each route's rule (`@BodyKind`, see `body.ts`): the caps, the body
 * time-outs, JSON or bytes. Used by the global guard (a token in an unauthenticated body) and by
 * {@link BodyInterceptor} (every other body, once the guard let the request through).
 */
@Injectable()
export class BodyReader {
  readonly caps: BodyCaps;
  private readonly timing: BodyTiming;
  private readonly uploadIdleMs: number;

  constructor(
    private readonly reflector: Reflector,
    @Inject(KILN_CONFIG) config: KilnConfig,
  ) {
    this.caps = bodyCaps(config);
    this.timing = {
      idleMs: config.api.bodyIdleSeconds * 1000,
      totalMs: config.api.bodyTimeoutSeconds * 1000,
    };
    this.uploadIdleMs = config.api.uploadIdleSeconds * 1000;
  }

  kindOf(context: ExecutionContext): BodyKindName {
    return (
      this.reflector.getAllAndOverride<BodyKindName | undefined>(BODY_KIND, [
        context.getHandler(),
        context.getClass(),
      ]) ?? 'json'
    );
  }

  /** The most bytes a route of `kind` takes (uploads have their own caps). */
  capOf(kind: BodyKindName): number {
    return kind === 'streamed' ? this.caps.json : this.caps[kind];
  }

  /** Whether the route reads the body itself, streaming: an upload. */
  isUpload(req: Request, kind: BodyKindName): boolean {
    return kind === 'streamed' || (kind !== 'raw' && isMultipart(req));
  }

  /** Reads the body as the route wants it, into `req.body`; an upload only gets its idle watch. */
  async read(req: Request, res: Response, kind: BodyKindName): Promise<void> {
    if (bodyWasRead(req)) return;
    if (this.isUpload(req, kind)) {
      watchUploadIdle(req, res, this.uploadIdleMs);
      return;
    }
    if (kind === 'raw') {
      const limit = this.caps.raw;
      req.body = await readBodyBytes(req, limit, this.timing, () =>
        KilnException.tooLarge(
          `Request body is too large: the payload is at most ${limit} bytes (KILN_PAYLOAD_MAX_BYTES)`,
        ),
      );
      return;
    }
    const limit = this.capOf(kind);
    const bytes = await readBodyBytes(req, limit, this.timing, () =>
      KilnException.tooLarge(`Request body is too large: this route takes at most ${limit} bytes`),
    );
    req.body = decodeJson(bytes);
  }

  /**
   * For a request with no token in its header or query: reads a JSON body that may hold one
   * (`oauth`), up to {@link PRE_AUTH_BODY_MAX_BYTES}. A larger body, or one that is not JSON, is
   * left as no token: the request is a 401, and the rest of its body is never read.
   */
  async readForToken(req: Request, kind: BodyKindName): Promise<void> {
    if (bodyWasRead(req) || !hasBody(req) || kind === 'raw' || this.isUpload(req, kind)) return;
    const limit = Math.min(PRE_AUTH_BODY_MAX_BYTES, this.capOf(kind));
    let bytes: Buffer;
    try {
      bytes = await readBodyBytes(req, limit, this.timing, () => KilnException.unauthorized());
    } catch (error) {
      // Too large: no token found; a body that timed out keeps its 408.
      if (!(error instanceof KilnException) || error.code !== ErrorCode.Unauthorized) throw error;
      req.body = {};
      return;
    }
    try {
      req.body = decodeJson(bytes);
    } catch {
      req.body = {};
    }
  }
}

/**
 * Reads each request's body after the global guard authenticated it (interceptors run after
 * guards): an unauthenticated client never makes the API read or parse its body.
 */
@Injectable()
export class BodyInterceptor implements NestInterceptor {
  constructor(private readonly reader: BodyReader) {}

  async intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    const http = context.switchToHttp();
    await this.reader.read(
      http.getRequest<Request>(),
      http.getResponse<Response>(),
      this.reader.kindOf(context),
    );
    return next.handle();
  }
}
