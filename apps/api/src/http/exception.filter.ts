import {
  ArgumentsHost,
  Catch,
  ExceptionFilter,
  HttpException,
  HttpStatus,
  Logger,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import { randomBytes } from 'node:crypto';
import { ErrorCode, KilnException } from '@kiln/common';
import { isDatabaseUnavailable } from '@kiln/database';
import { closeIfUnread } from './body';

const STATUS: Record<ErrorCode, number> = {
  [ErrorCode.BadRequest]: HttpStatus.BAD_REQUEST,
  [ErrorCode.Unauthorized]: HttpStatus.UNAUTHORIZED,
  [ErrorCode.Forbidden]: HttpStatus.FORBIDDEN,
  [ErrorCode.NotFound]: HttpStatus.NOT_FOUND,
  [ErrorCode.Conflict]: HttpStatus.CONFLICT,
  [ErrorCode.PayloadTooLarge]: HttpStatus.PAYLOAD_TOO_LARGE,
  [ErrorCode.UnsupportedMediaType]: HttpStatus.UNSUPPORTED_MEDIA_TYPE,
  [ErrorCode.QuotaExceeded]: HttpStatus.TOO_MANY_REQUESTS,
  [ErrorCode.TooManyRequests]: HttpStatus.TOO_MANY_REQUESTS,
  [ErrorCode.RequestTimeout]: HttpStatus.REQUEST_TIMEOUT,
  [ErrorCode.Unavailable]: HttpStatus.SERVICE_UNAVAILABLE,
};

export interface ErrorAnswer {
  status: number;
  msg: string;
  /** Seconds for `Retry-After`, when the client may try again later. */
  retryAfter?: number;
}

/**
 * Every failure becomes IronWorker's `{"msg": …}` with a precise status: domain errors by their
 * code (body caps and time-outs included: `body.ts`), HTTP errors (routing, multer) as they are,
 * an unreachable database as 503 so clients retry, and anything unexpected as a 500 that logs an
 * error id and leaks nothing.
 */
export function answerFor(error: unknown, logger: Logger): ErrorAnswer {
  if (error instanceof KilnException) {
    return { status: STATUS[error.code], msg: error.message, retryAfter: error.retryAfterSeconds };
  }
  if (error instanceof HttpException) {
    const response = error.getResponse();
    const message =
      typeof response === 'string' ? response : (response as { message?: unknown }).message;
    const msg = Array.isArray(message)
      ? message.join('; ')
      : typeof message === 'string'
        ? message
        : error.message;
    return { status: error.getStatus(), msg };
  }
  const bodyError = error as { type?: unknown; status?: unknown };
  if (
    typeof bodyError?.type === 'string' &&
    typeof bodyError.status === 'number' &&
    bodyError.status < 500
  ) {
    return { status: bodyError.status, msg: `Bad request body: ${(error as Error).message}` };
  }
  if (isDatabaseUnavailable(error)) {
    return { status: HttpStatus.SERVICE_UNAVAILABLE, msg: 'Database unavailable, retry later' };
  }
  const ref = randomBytes(6).toString('hex');
  logger.error(`unexpected error ${ref}: ${(error as Error)?.stack ?? String(error)}`);
  return { status: HttpStatus.INTERNAL_SERVER_ERROR, msg: `Internal error (ref ${ref})` };
}

/** Writes an error answer: `{"msg"}` as JSON, `Retry-After` when given. */
export function sendError(req: Request, res: Response, answer: ErrorAnswer): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  if (answer.retryAfter !== undefined) res.setHeader('Retry-After', String(answer.retryAfter));
  closeIfUnread(req, res);
  // A route may have set its own Content-Type (e.g. text/plain for logs); errors are always JSON.
  res.status(answer.status).type('application/json').json({ msg: answer.msg });
}

@Catch()
export class KilnExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('HTTP');

  catch(error: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    sendError(
      http.getRequest<Request>(),
      http.getResponse<Response>(),
      answerFor(error, this.logger),
    );
  }
}
