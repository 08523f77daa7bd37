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
  Unavailable = 'unavailable',
}

export class KilnException extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
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

  static unavailable(message: string): KilnException {
    return new KilnException(ErrorCode.Unavailable, message);
  }
}
