/**
 * cli: one trivial task (payload `{}`: the test image prints it and exits) end to end, from a
 * shell, two ways in the same run, alternating, several rounds:
 *   - `kiln queue bench --payload '{}' --wait` (the built CLI: creates the task, streams its log
 *     through `…/log?follow=1`, exits with its outcome);
 *   - the raw API with `curl`: POST the task, poll `GET …/tasks/{id}` every 0.1 s until the status
 *     is final, then GET its log (what a shell script without the CLI does).
 * Each is timed from process start to exit, output printed. Target: the CLI's median ≤ 1.2× the
 * curl script's median.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { APP_DIR, setting } from './lib/env';
import { CODE_NAME, newProject, startKiln } from './lib/kiln';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';
import { summarize } from './lib/stats';

const CLI = 'dist/apps/cli/src/main.js';

/** The curl baseline: POST, poll every 0.1 s until final, print the log. */
const CURL_SCRIPT = `
set -euo pipefail
H="Authorization: OAuth $KILN_TOKEN"; API="$KILN_URL/2/projects/$KILN_PROJECT_ID"
id=$(curl -sf -H "$H" -H 'Content-Type: application/json' \\
  -d '{"tasks":[{"code_name":"${CODE_NAME}","payload":"{}"}]}' "$API/tasks" | grep -o '"id":"[0-9a-f]*"' | cut -d'"' -f4)
while :; do
  status=$(curl -sf -H "$H" "$API/tasks/$id" | grep -o '"status":"[a-z]*"' | cut -d'"' -f4)
  case $status in complete|error|cancelled|killed|timeout) break ;; esac
  sleep 0.1
done
curl -sf -H "$H" "$API/tasks/$id/log"
[ "$status" = complete ]
`;

interface Timed {
  seconds: number;
  stdout: string;
  code: number | null;
}

function timed(command: string, args: string[], env: Record<string, string>): Promise<Timed> {
  const started = process.hrtime.bigint();
  const child = spawn(command, args, {
    cwd: APP_DIR,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/root', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code !== 0) {
        reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.slice(0, 500)}`));
      } else {
        resolve({ seconds, stdout, code });
      }
    });
  });
}

export async function cli(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    rounds: Math.max(1, setting('KILN_BENCH_CLI_ROUNDS', 15)),
    warmup: setting('KILN_BENCH_CLI_WARMUP', 2),
    pollSeconds: 0.1,
  };
  const kiln = await startKiln(ctx.infra, 'cli', { workerConcurrency: 2, profile: ctx.profile });
  const project = await newProject(kiln, 'bench-cli');
  const env = { KILN_URL: kiln.url, KILN_PROJECT_ID: project.id, KILN_TOKEN: project.api.token };
  const viaCli = () =>
    timed(
      process.execPath,
      [join(APP_DIR, CLI), 'queue', CODE_NAME, '--payload', '{}', '--wait'],
      env,
    );
  const viaCurl = () => timed('bash', ['-c', CURL_SCRIPT], env);

  console.log(`[cli] warm-up: ${params.warmup} each way`);
  for (let i = 0; i < params.warmup; i++) {
    await viaCli();
    await viaCurl();
  }
  const cliSeconds: number[] = [];
  const curlSeconds: number[] = [];
  for (let r = 0; r < params.rounds; r++) {
    ctx.deadline.check();
    // Alternate which goes first, so a slow patch of the machine hits both alike.
    const order = r % 2 === 0 ? ['cli', 'curl'] : ['curl', 'cli'];
    for (const way of order) {
      const result = way === 'cli' ? await viaCli() : await viaCurl();
      if (result.stdout !== '{}\n') {
        throw new Error(`${way} printed ${JSON.stringify(result.stdout)}`);
      }
      (way === 'cli' ? cliSeconds : curlSeconds).push(result.seconds);
    }
    console.log(
      `[cli] round ${r + 1}: kiln ${fmt(cliSeconds[r], 3)} s, curl ${fmt(curlSeconds[r], 3)} s`,
    );
  }
  const cliStats = summarize(cliSeconds, 3);
  const curlStats = summarize(curlSeconds, 3);
  const ratio = cliStats.p50 / curlStats.p50;
  const startupSeconds: number[] = [];
  for (let i = 0; i < 5; i++) {
    startupSeconds.push(
      (await timed(process.execPath, [join(APP_DIR, CLI), '--version'], {})).seconds,
    );
  }
  const startup = summarize(startupSeconds, 3);
  const rows: Row[] = [
    {
      metric: `kiln queue --wait, median of ${params.rounds}`,
      value: `${fmt(cliStats.p50, 3)} s (min ${fmt(cliStats.min, 3)}, max ${fmt(cliStats.max, 3)})`,
    },
    {
      metric: `curl + polling every ${params.pollSeconds} s, median`,
      value: `${fmt(curlStats.p50, 3)} s (min ${fmt(curlStats.min, 3)}, max ${fmt(curlStats.max, 3)})`,
    },
    {
      metric: 'kiln / curl (medians)',
      value: `${fmt(ratio, 2)}×`,
      target: '≤ 1.2×',
      met: ratio <= 1.2,
    },
    { metric: 'kiln --version (node start-up), median', value: `${fmt(startup.p50, 3)} s` },
  ];
  return {
    ...resultHeader('cli', ctx, startedAt),
    params,
    rows,
    details: { cliSeconds, curlSeconds, cli: cliStats, curl: curlStats, startup },
  };
}
