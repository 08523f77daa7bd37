/**
 * Domain errors carry a code; one exception filter maps codes to HTTP statuses and IronWorker's
 * `{"msg": …}` body, so the same failure is answered the same way on every route.
 */
export enum ErrorCode {
  BadRequest = 'bad_request',
  Unauthorized = 'unauthorized',
  Forbidden = 'forbidden',
  NotFound = 'not_found',
  Conflict = 'conflict',
  PayloadTooLarge = 'payload_too_large',
  UnsupportedMediaType = 'unsupported_media_type',
  /** A project's quota is used up (429). */
  QuotaExceeded = 'quota_exceeded',
  /** Too many requests for now: a rate limit or a cap on open streams (429, with `Retry-After`). */
  TooManyRequests = 'too_many_requests',
  /** The client was too slow sending its request (408). */
  RequestTimeout = 'request_timeout',
  Unavailable = 'unavailable',
}

export class KilnException extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Seconds the client should wait before trying again: the answer's `Retry-After`. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'KilnException';
  }

  static badRequest(message: string): KilnException {
    return new KilnException(ErrorCode.BadRequest, message);
  }

  static notFound(message: string): KilnException {
    return new KilnException(ErrorCode.NotFound, message);
  }

  static unauthorized(
    message = 'The OAuth token is either not provided or invalid',
  ): KilnException {
    return new KilnException(ErrorCode.Unauthorized, message);
  }

  static forbidden(message: string): KilnException {
    return new KilnException(ErrorCode.Forbidden, message);
  }

  static tooLarge(message: string): KilnException {
    return new KilnException(ErrorCode.PayloadTooLarge, message);
  }

  static quotaExceeded(message: string): KilnException {
    return new KilnException(ErrorCode.QuotaExceeded, message);
  }

  /** A 429 with `Retry-After: retryAfterSeconds` (at least 1). */
  static tooManyRequests(message: string, retryAfterSeconds: number): KilnException {
    return new KilnException(
      ErrorCode.TooManyRequests,
      message,
      Math.max(1, Math.ceil(retryAfterSeconds)),
    );
  }

  static requestTimeout(message: string): KilnException {
    return new KilnException(ErrorCode.RequestTimeout, message);
  }

  static unavailable(message: string): KilnException {
    return new KilnException(ErrorCode.Unavailable, message);
  }
}
