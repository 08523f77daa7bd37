/** The signed-in session, as `GET /ui/session` answers it. */
export interface Session {
  csrf: string;
  admin: boolean;
  project_id: string | null;
  role: 'read' | 'queue' | 'manage' | 'admin';
  expires_at: string;
}

/** An answer of the API other than 2xx: its `msg` is what the page shows. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    msg: string,
  ) {
    super(msg);
  }
}

let session: Session | null = null;
/** Called when the API says the session has ended (401): the app returns to sign-in. */
let onSessionEnded: (msg: string) => void = () => undefined;

export function currentSession(): Session | null {
  return session;
}

export function whenSessionEnds(handler: (msg: string) => void): void {
  onSessionEnded = handler;
}

/** Whether the session may act (queue, cancel, pause…): a `read` token sees, and does nothing. */
export function canAct(): boolean {
  return session !== null && session.role !== 'read';
}

/**
 * One call to the API, as the signed-in session: the cookie goes by itself (same origin), and
 * every call but a GET carries the session's CSRF secret. Answers the parsed JSON, or throws an
 * {@link ApiError} with the API's `msg`.
 */
export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && session) headers['X-Kiln-CSRF'] = session.csrf;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch {
    throw new ApiError(0, 'The API did not answer: check your connection and retry');
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const msg =
      json && typeof json === 'object' && typeof (json as { msg?: unknown }).msg === 'string'
        ? (json as { msg: string }).msg
        : `The API answered ${res.status}`;
    if (res.status === 401 && session && path !== '/ui/session') {
      session = null;
      onSessionEnded(msg);
    }
    throw new ApiError(res.status, msg);
  }
  return json as T;
}

/**
 * The session of the cookie, if it is still live; otherwise why it ended (the API's `msg`), or
 * null when there was no session at all.
 */
export async function loadSession(): Promise<Session | { ended: string | null }> {
  try {
    session = await api<Session>('GET', '/ui/session');
    return session;
  } catch (error) {
    session = null;
    const msg = error instanceof ApiError ? error.message : null;
    return { ended: msg === null || msg.startsWith('Not signed in') ? null : msg };
  }
}

export async function signIn(token: string): Promise<Session> {
  session = await api<Session>('POST', '/ui/session', { token });
  return session;
}

export async function signOut(): Promise<void> {
  try {
    await api('DELETE', '/ui/session');
  } finally {
    session = null;
  }
}

/** `/2/projects/{pid}/…` */
export function projectPath(projectId: string, rest: string): string {
  return `/2/projects/${encodeURIComponent(projectId)}/${rest}`;
}
