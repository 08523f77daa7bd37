import { sameSecret } from '@kiln/common';
import type { KilnConfig } from '@kiln/config';

/** Whether a request may read `/metrics`: `missing` (no token), `denied` (another token) or `granted`. */
export type ScrapeAccess = 'granted' | 'missing' | 'denied';

/**
 * `/metrics` is read with the admin token or the operator's scrape token (KILN_METRICS_TOKEN),
 * never with a project token: the figures span every project.
 */
export function scrapeAccess(token: string | undefined, config: KilnConfig): ScrapeAccess {
  if (token === undefined || token === '') return 'missing';
  const allowed = [config.adminToken, config.metrics.token].filter(
    (secret): secret is string => secret !== undefined,
  );
  // Every secret is compared, so the time taken does not tell which one nearly matched.
  let granted = false;
  for (const secret of allowed) granted = sameSecret(token, secret) || granted;
  return granted ? 'granted' : 'denied';
}

/** The token of an `Authorization: OAuth <token>` or `Bearer <token>` header. */
export function headerToken(authorization: string | undefined): string | undefined {
  return /^(?:OAuth|Bearer)\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
}
