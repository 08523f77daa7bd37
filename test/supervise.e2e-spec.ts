import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitUntil } from './support/kiln';
import { ROOT, sleep } from './support/processes';

/**
 * `npm start` runs each Kiln process under scripts/supervise.sh: one that exits on its own is
 * started again, with a line saying so; SIGTERM (what Ctrl-C in `npm start` sends it) stops both.
 */
describe('scripts/supervise.sh', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'kiln-supervise-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('restarts a process that exits, says so, and stops it on SIGTERM', async () => {
    const runs = join(dir, 'runs');
    // Each run appends its pid; the first two exit with code 3, the third stays up until stopped.
    const program = `
      const fs = require('fs');
      fs.appendFileSync(${JSON.stringify(runs)}, process.pid + '\\n');
      const n = fs.readFileSync(${JSON.stringify(runs)}, 'utf8').trim().split('\\n').length;
      if (n < 3) process.exit(3);
      process.on('SIGTERM', () => { fs.appendFileSync(${JSON.stringify(runs)}, 'stopped\\n'); process.exit(0); });
      setInterval(() => {}, 1000);`;
    const supervisor = spawn(
      'bash',
      [join(ROOT, 'scripts/supervise.sh'), 'demo', process.execPath, '-e', program],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    supervisor.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const lines = () => readFileSync(runs, 'utf8').trim().split('\n');
    await waitUntil('two restarts', () => safe(lines).length >= 3, {
      timeoutMs: 15_000,
      state: () => `stderr: ${stderr}`,
    });
    expect(stderr).toContain('[kiln] demo exited unexpectedly (exit code 3); restarting it in 1 s');
    expect(stderr).toContain('[kiln] demo exited unexpectedly (exit code 3); restarting it in 2 s');
    // A fixed grace, nothing to poll for: the third run installs its SIGTERM handler right after
    // it wrote its pid.
    await sleep(300);
    const exited = new Promise<number | null>((resolve) => supervisor.once('exit', resolve));
    const stoppingAt = Date.now();
    supervisor.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - stoppingAt).toBeLessThan(5000);
    expect(lines()).toHaveLength(4);
    expect(lines()[3]).toBe('stopped');
    const pids = lines().slice(0, 3).map(Number);
    expect(new Set(pids).size).toBe(3);
  }, 30_000);
});

function safe(read: () => string[]): string[] {
  try {
    return read();
  } catch {
    return [];
  }
}
