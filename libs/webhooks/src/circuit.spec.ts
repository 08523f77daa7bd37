import { AttemptReport, CLOSED, Circuit, nextCircuit } from './circuit';

const SETTINGS = { failures: 3, schedule: [5, 300, 1800] };
const NOW = new Date('2026-11-30T12:00:00Z');
const MID = () => 0.5; // no jitter: exactly the schedule's step
const at = (seconds: number) => new Date(NOW.getTime() + seconds * 1000);

const failure = (over: Partial<AttemptReport> = {}): AttemptReport => ({
  delivered: false,
  unreachable: false,
  gone: false,
  probe: false,
  error: 'Endpoint answered 503',
  ...over,
});
const success: AttemptReport = { ...failure(), delivered: true, error: null };

function run(circuit: Circuit, reports: AttemptReport[], now = NOW): Circuit {
  return reports.reduce((c, report) => nextCircuit(c, report, SETTINGS, now, MID), circuit);
}

describe('nextCircuit', () => {
  it('counts failures in a row and opens at the threshold, probing after the first step', () => {
    const two = run(CLOSED, [failure(), failure()]);
    expect(two).toMatchObject({ state: 'closed', failures: 2, lastError: 'Endpoint answered 503' });
    const open = run(two, [failure()]);
    expect(open).toMatchObject({ state: 'open', failures: 3, probes: 0, openedAt: NOW });
    expect(open.probeAt).toEqual(at(5));
  });

  it('a delivery that gets through resets the count, and closes an open circuit', () => {
    expect(run(CLOSED, [failure(), failure(), success, failure(), failure()])).toMatchObject({
      state: 'closed',
      failures: 2,
    });
    const open = run(CLOSED, [failure(), failure(), failure()]);
    expect(run(open, [{ ...success, probe: true }])).toEqual(CLOSED);
  });

  it('opens at once when the endpoint cannot be reached (connect time-out, refused, DNS)', () => {
    const open = run(CLOSED, [failure({ unreachable: true, error: 'connect timed out' })]);
    expect(open).toMatchObject({ state: 'open', failures: 1, lastError: 'connect timed out' });
  });

  it('moves the probe a step per failed probe, and disables when the schedule is used up', () => {
    let circuit = run(CLOSED, [failure({ unreachable: true })]);
    circuit = nextCircuit(circuit, failure({ probe: true }), SETTINGS, at(5), MID);
    expect(circuit).toMatchObject({ state: 'open', probes: 1, probeAt: at(305) });
    circuit = nextCircuit(circuit, failure({ probe: true }), SETTINGS, at(305), MID);
    expect(circuit).toMatchObject({ state: 'open', probes: 2, probeAt: at(2105) });
    circuit = nextCircuit(circuit, failure({ probe: true }), SETTINGS, at(2105), MID);
    expect(circuit).toMatchObject({ state: 'disabled', probes: 3, probeAt: null });
    expect(circuit.reason).toBe('Endpoint failed for 35 min: Endpoint answered 503');
  });

  it('failures of attempts already in flight when it opened do not move the probe', () => {
    const open = run(CLOSED, [failure(), failure(), failure()]);
    const after = run(open, [failure(), failure()]);
    expect(after).toMatchObject({ state: 'open', failures: 5, probes: 0, probeAt: open.probeAt });
  });

  it('a 410 Gone disables at once; a disabled circuit stays disabled', () => {
    const gone = run(CLOSED, [failure({ gone: true, error: 'Endpoint answered 410 Gone' })]);
    expect(gone).toMatchObject({ state: 'disabled', reason: 'Endpoint answered 410 Gone' });
    expect(run(gone, [success, failure({ probe: true })])).toBe(gone);
  });
});
