/**
 * True when an error means "the database is unreachable or going away" rather than "this query is
 * wrong": such failures are answered 503 so that IronWorker's clients retry them.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    // 08xxx connection exceptions, 57P0x operator intervention (shutdown), 53xxx out of resources.
    if (/^(08|57P0|53)/.test(code)) return true;
    if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND'].includes(code)) {
      return true;
    }
  }
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Connection refused|the database system is (starting up|shutting down)/i.test(
    error.message,
  );
}
