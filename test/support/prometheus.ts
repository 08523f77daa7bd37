import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, LOG_DIR, sleep, stopApp } from './processes';

/** A target Prometheus scrapes: a Kiln process's `/metrics`, read with `token`. */
export interface ScrapeTarget {
  job: string;
  /** `127.0.0.1:port` */
  address: string;
  token: string;
}

export interface Sample {
  metric: Record<string, string>;
  value: number;
}

/** The path of a Prometheus tool (Debian's `prometheus` package), or a clear error. */
export function prometheusTool(name: 'prometheus' | 'promtool'): string {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const path = found.stdout.trim();
  if (found.status !== 0 || path === '') {
    throw new Error(
      `${name} is not installed: the metrics tests need Debian's prometheus package (scripts/infra/packages.sh lists it; apt-get install prometheus)`,
    );
  }
  return path;
}

/** Runs promtool with `args` (and `input` on stdin); resolves with its output, throws with it. */
export function promtool(args: string[], input?: string): string {
  const result = spawnSync(prometheusTool('promtool'), args, { input, encoding: 'utf8' });
  const output = `${result.stdout}${result.stderr}`;
  if (result.status !== 0) {
    throw new Error(`promtool ${args.join(' ')} failed (${result.status}):\n${output}`);
  }
  return output;
}

/**
 * A real Prometheus of the test's own, on a free loopback port, with a temporary config and data
 * directory, scraping `targets` every second (and evaluating `ruleFiles` every second).
 */
export class TestPrometheus {
  private child: ChildProcess | undefined;
  private dir = '';
  url = '';

  async start(targets: ScrapeTarget[], ruleFiles: string[] = []): Promise<void> {
    const binary = prometheusTool('prometheus');
    this.dir = mkdtempSync(join(tmpdir(), 'kiln-prometheus-'));
    const port = await freePort();
    this.url = `http://127.0.0.1:${port}`;
    // YAML is a superset of JSON: the config is written as JSON.
    const config = {
      global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
      rule_files: ruleFiles,
      scrape_configs: targets.map((target) => ({
        job_name: target.job,
        metrics_path: '/metrics',
        authorization: { type: 'Bearer', credentials: target.token },
        static_configs: [{ targets: [target.address] }],
      })),
    };
    const configFile = join(this.dir, 'prometheus.yml');
    writeFileSync(configFile, JSON.stringify(config, null, 2));
    execFileSync(prometheusTool('promtool'), ['check', 'config', configFile], { stdio: 'pipe' });
    mkdirSync(LOG_DIR, { recursive: true });
    const log = createWriteStream(join(LOG_DIR, 'prometheus.log'), { flags: 'a' });
    const child = spawn(
      binary,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(this.dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--storage.tsdb.retention.time=1h',
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    this.child = child;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) {
        throw new Error('prometheus exited at start (see prometheus.log)');
      }
      const ready = await fetch(`${this.url}/-/ready`).then(
        (res) => res.ok,
        () => false,
      );
      if (ready) return;
      if (Date.now() > deadline) throw new Error('prometheus not ready within 30 s');
      await sleep(200);
    }
  }

  /** An instant query through the HTTP API (`/api/v1/query`): its vector's samples. */
  async query(expr: string): Promise<Sample[]> {
    const res = await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data?: {
        resultType: string;
        result: { metric: Record<string, string>; value: [number, string] }[];
      };
    };
    if (body.status !== 'success' || !body.data) {
      throw new Error(`query ${expr} failed: ${body.error ?? res.status}`);
    }
    return body.data.result.map((item) => ({ metric: item.metric, value: Number(item.value[1]) }));
  }

  /** The value of a query that yields one sample (undefined when it yields none). */
  async value(expr: string): Promise<number | undefined> {
    const samples = await this.query(expr);
    if (samples.length > 1) throw new Error(`${expr} gave ${samples.length} samples`);
    return samples[0]?.value;
  }

  /** Scrape targets and their health (`/api/v1/targets`). */
  async targets(): Promise<{ job: string; health: string; lastError: string }[]> {
    const res = await fetch(`${this.url}/api/v1/targets`);
    const body = (await res.json()) as {
      data: { activeTargets: { labels: { job: string }; health: string; lastError: string }[] };
    };
    return body.data.activeTargets.map((t) => ({
      job: t.labels.job,
      health: t.health,
      lastError: t.lastError,
    }));
  }

  async stop(): Promise<void> {
    if (this.child) await stopApp(this.child, 10_000);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
