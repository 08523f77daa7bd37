/**
 * Every failure of a Kiln call: `status` is the HTTP status (0 when no answer came: network
 * error, timeout) and `msg` Kiln's `{"msg": …}` (or what went wrong).
 */
export class KilnError extends Error {
  override name = 'KilnError';

  constructor(
    readonly status: number,
    readonly msg: string,
    /** The call that failed, e.g. `GET /2/projects/…/tasks/…`. */
    readonly request = '',
  ) {
    super(request ? `${request}: ${status ? `${status} ` : ''}${msg}` : msg);
  }

  /** The API refused the token (401) or the project (403). */
  get isAuth(): boolean {
    return this.status === 401 || this.status === 403;
  }

  get isNotFound(): boolean {
    return this.status === 404;
  }
}

/**
 * The task did not end in time: `tasks.wait` (or `run`) gave up (`status` 0), or Kiln answered an
 * invoke 504 (`codes.invoke`). The task goes on; `taskId` names it, to poll or cancel.
 */
export class KilnTimeoutError extends KilnError {
  override name = 'KilnTimeoutError';

  constructor(
    msg: string,
    readonly taskId?: string,
    status = 0,
    request = '',
  ) {
    super(status, msg, request);
  }
}
