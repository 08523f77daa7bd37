import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitUntil } from './kiln';
import { freePort } from './processes';

/**
 * A real load balancer in front of API replicas: Debian's haproxy on loopback, health-checking
 * each replica's `/healthz` every 500 ms (down after 2 failures, up after 2 successes), retrying a
 * request whose connection could not be made on another replica (never one a replica received). Its stats page tells how it sees them.
 */
export class Balancer {
  port = 0;
  private statsPort = 0;
  private child: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'kiln-balancer-'));

  constructor(private readonly apiPorts: number[]) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.port = await freePort();
    this.statsPort = await freePort();
    const config = join(this.dir, 'haproxy.cfg');
    writeFileSync(
      config,
      [
        'global',
        '  maxconn 2000',
        'defaults',
        '  mode http',
        '  timeout connect 2s',
        '  timeout check 2s',
        '  timeout client 120s',
        '  timeout server 120s',
        '  retries 3',
        '  option redispatch',
        // Only a connection that failed is retried: a request a replica broke off is a failure the
        // clients see (a rolling restart must not produce any).
        '  retry-on conn-failure',
        'frontend kiln',
        `  bind 127.0.0.1:${this.port}`,
        '  default_backend apis',
        'backend apis',
        '  balance roundrobin',
        '  option httpchk GET /healthz',
        '  http-check expect status 200',
        '  default-server inter 500ms fall 2 rise 2',
        ...this.apiPorts.map((port, i) => `  server api${i} 127.0.0.1:${port} check`),
        'listen stats',
        `  bind 127.0.0.1:${this.statsPort}`,
        '  stats enable',
        '  stats uri /stats',
      ].join('\n') + '\n',
    );
    this.child = spawn('/usr/sbin/haproxy', ['-db', '-f', config], { stdio: 'ignore' });
  }

  /** How haproxy sees each replica: `UP`, `DOWN`, … by server name (`api0`, …). */
  async view(): Promise<Record<string, string>> {
    const csv = await (await fetch(`http://127.0.0.1:${this.statsPort}/stats;csv`)).text();
    const view: Record<string, string> = {};
    for (const line of csv.split('\n')) {
      const fields = line.split(',');
      if (fields[0] === 'apis' && fields[1]?.startsWith('api')) view[fields[1]] = fields[17];
    }
    return view;
  }

  /** Resolves once haproxy sees every replica up. */
  allUp(): Promise<void> {
    return waitUntil(
      'haproxy to see every API replica up',
      async () => {
        const states = Object.values(await this.view().catch(() => ({})));
        return states.length === this.apiPorts.length && states.every((s) => s === 'UP');
      },
      { timeoutMs: 30_000, state: async () => JSON.stringify(await this.view()) },
    );
  }

  close(): void {
    this.child?.kill('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}
