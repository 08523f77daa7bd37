/**
 * Preloaded (`node -r`) into a Kiln process when KILN_BENCH_PROFILE=1: records a V8 CPU profile
 * from start-up until the first SIGTERM and writes it to $KILN_BENCH_CPUPROFILE. (`--cpu-prof`
 * would write nothing: Nest re-raises SIGTERM after its shutdown hooks, so the process dies of the
 * signal.) The process still shuts down as it normally would, then exits 0.
 */
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';

const target = process.env.KILN_BENCH_CPUPROFILE;
if (target) {
  const session = new Session();
  session.connect();
  session.post('Profiler.setSamplingInterval', { interval: 500 });
  session.post('Profiler.enable');
  session.post('Profiler.start');
  let written: Promise<void> | undefined;
  const write = (): Promise<void> =>
    (written ??= new Promise<void>((resolve) => {
      session.post('Profiler.stop', (error, result) => {
        if (!error) writeFileSync(target, JSON.stringify(result.profile));
        resolve();
      });
    }));
  let signals = 0;
  process.on('SIGTERM', () => {
    signals++;
    void write().then(() => {
      // Nest re-raises the signal once its shutdown hooks ran; this listener keeps the process
      // alive until then, and lets it go afterwards (or after 20 s at most).
      if (signals >= 2) process.exit(0);
      setTimeout(() => process.exit(0), 20_000).unref();
    });
  });
}
