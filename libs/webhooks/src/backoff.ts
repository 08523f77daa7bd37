/**
 * Seconds until the next try of a delivery that has failed `failures` times in a row (1 = the
 * first try failed), from `schedule` with ±10 % jitter so that endpoints coming back are not hit
 * by every retry at once; null when the schedule is used up and the delivery has failed for good.
 */
export function retryDelaySeconds(
  failures: number,
  schedule: readonly number[],
  random: () => number = Math.random,
): number | null {
  if (failures < 1 || failures > schedule.length) return null;
  const base = schedule[failures - 1];
  return Math.max(0.5, base * (0.9 + 0.2 * random()));
}
