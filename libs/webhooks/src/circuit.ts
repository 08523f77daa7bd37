import { retryDelaySeconds } from './backoff';

/**
 * An endpoint's circuit: `closed` (deliveries flow), `open` (parked: its deliveries wait without
 * taking attempts, one probe goes out on the retry schedule) or `disabled` (the probes used the
 * schedule up, or it answered 410 Gone).
 */
export type CircuitState = 'closed' | 'open' | 'disabled';

export interface Circuit {
  state: CircuitState;
  /** Failures in a row since the last delivery that got through. */
  failures: number;
  /** Probes that failed since the circuit opened: picks the step of the retry schedule. */
  probes: number;
  openedAt: Date | null;
  /** When the next probe may go out (open circuits only). */
  probeAt: Date | null;
  lastError: string | null;
  /** Why it was disabled (set with `state: 'disabled'` only). */
  reason?: string;
}

/** What one recorded attempt to the endpoint came to. */
export interface AttemptReport {
  delivered: boolean;
  /** No connection could be made (connect time-out, refused, DNS): parks at once. */
  unreachable: boolean;
  /** The endpoint answered 410 Gone: disabled at once. */
  gone: boolean;
  /** The attempt was the open circuit's probe. */
  probe: boolean;
  error: string | null;
}

export interface CircuitSettings {
  /** Failures in a row that open the circuit (`KILN_WEBHOOK_CIRCUIT_FAILURES`). */
  failures: number;
  /** The retry schedule, in seconds: the probes' too (`KILN_WEBHOOK_RETRY_SCHEDULE`). */
  schedule: readonly number[];
}

export const CLOSED: Circuit = {
  state: 'closed',
  failures: 0,
  probes: 0,
  openedAt: null,
  probeAt: null,
  lastError: null,
};

function later(now: Date, seconds: number): Date {
  return new Date(now.getTime() + seconds * 1000);
}

function hours(from: Date, to: Date): string {
  const h = (to.getTime() - from.getTime()) / 3600_000;
  return h >= 1 ? `${Math.round(h)} h` : `${Math.max(1, Math.round(h * 60))} min`;
}

/**
 * The circuit after one attempt. A delivery that gets through closes it. A failure while closed
 * counts, and opens it at `settings.failures` in a row or at once when the endpoint was
 * unreachable; the first probe then goes out after the schedule's first step. A failed probe
 * moves the next one a step further; when the schedule is used up (as a delivery's retries would
 * be) the endpoint is disabled. Failures of attempts that were already in flight when it opened
 * count, but do not move the probe. A disabled circuit stays so (only its owner reopens it).
 */
export function nextCircuit(
  circuit: Circuit,
  report: AttemptReport,
  settings: CircuitSettings,
  now: Date,
  random: () => number = Math.random,
): Circuit {
  if (circuit.state === 'disabled') return circuit;
  if (report.delivered) return CLOSED;
  const failed = { ...circuit, failures: circuit.failures + 1, lastError: report.error };
  if (report.gone) {
    return { ...failed, state: 'disabled', probeAt: null, reason: 'Endpoint answered 410 Gone' };
  }
  if (circuit.state === 'closed') {
    if (!report.unreachable && failed.failures < settings.failures) return failed;
    const first = retryDelaySeconds(1, settings.schedule, random) ?? 0;
    return { ...failed, state: 'open', probes: 0, openedAt: now, probeAt: later(now, first) };
  }
  if (!report.probe) return failed;
  const probes = circuit.probes + 1;
  const next = retryDelaySeconds(probes + 1, settings.schedule, random);
  if (next === null) {
    const since = circuit.openedAt ?? now;
    return {
      ...failed,
      state: 'disabled',
      probes,
      probeAt: null,
      reason: `Endpoint failed for ${hours(since, now)}: ${report.error ?? 'no answer'}`,
    };
  }
  return { ...failed, probes, probeAt: later(now, next) };
}
