/** IronWorker clients need RFC3339 everywhere; Go and Ruby choke on "" or null for unset times. */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

export function formatTime(value: Date | null | undefined): string {
  return value ? value.toISOString() : ZERO_TIME;
}
