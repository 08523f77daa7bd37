import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { freePort, sleep } from './processes';

// Jest-free: the benchmarks (bench/, plain node) import this file too.

/** Debian's pgbouncer (scripts/infra/packages.sh installs it). */
export const PGBOUNCER = '/usr/sbin/pgbouncer';

/** A database of the pooler's own: its name, the real database, and its pool size. */
export interface BouncerAlias {
  name: string;
  dbname: string;
  poolSize: number;
}

/**
 * A PgBouncer of a suite's (or a benchmark's) own in front of the test Postgres (`TEST_DATABASE_URL`'s server), in
 * transaction pooling, on a loopback port of its own, with its files in a temporary folder. It
 * authenticates clients as the test database's user (a userlist with that user's password) and
 * reaches any database of that server by its name (`*`). It refuses to run as root, so as root it
 * runs as `postgres`, as scripts/infra/postgres.sh runs Postgres.
 */
export class OwnPgBouncer {
  port = 0;
  private dir = '';
  private child: ChildProcess | undefined;
  private readonly server: URL;

  constructor(
    private readonly options: {
      /** Server connections per (database, user); default 20. */
      poolSize?: number;
      aliases?: BouncerAlias[];
      /** A database URL of the Postgres to pool (its user and password are the pooler's); default `TEST_DATABASE_URL`. */
      server?: string;
    } = {},
  ) {
    this.server = new URL(options.server ?? process.env.TEST_DATABASE_URL!);
  }

  get user(): string {
    return decodeURIComponent(this.server.username);
  }

  async start(): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'kiln-pgbouncer-'));
    this.port = await freePort();
    const host = this.server.hostname;
    const port = this.server.port || '5432';
    const aliases = (this.options.aliases ?? []).map(
      (alias) =>
        `${alias.name} = host=${host} port=${port} dbname=${alias.dbname} pool_size=${alias.poolSize}`,
    );
    const password = decodeURIComponent(this.server.password);
    writeFileSync(join(this.dir, 'userlist.txt'), `"${this.user}" "${password}"\n`, {
      mode: 0o600,
    });
    writeFileSync(
      join(this.dir, 'pgbouncer.ini'),
      [
        '[databases]',
        ...aliases,
        `* = host=${host} port=${port}`,
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${this.port}`,
        'unix_socket_dir =',
        'auth_type = scram-sha-256',
        `auth_file = ${join(this.dir, 'userlist.txt')}`,
        `admin_users = ${this.user}`,
        `stats_users = ${this.user}`,
        'pool_mode = transaction',
        `default_pool_size = ${this.options.poolSize ?? 20}`,
        'max_client_conn = 1000',
        `logfile = ${join(this.dir, 'pgbouncer.log')}`,
        `pidfile = ${join(this.dir, 'pgbouncer.pid')}`,
        '',
      ].join('\n'),
    );
    const owner = ownerIds();
    if (owner) {
      for (const file of ['', 'userlist.txt', 'pgbouncer.ini']) {
        chownSync(join(this.dir, file), owner.uid, owner.gid);
      }
    }
    const child = spawn(PGBOUNCER, [join(this.dir, 'pgbouncer.ini')], {
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(owner ?? {}),
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    this.child = child;
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) {
        throw new Error(`pgbouncer exited (${child.exitCode}): ${stderr}${this.log()}`);
      }
      try {
        await this.admin('SHOW VERSION');
        return;
      } catch (error) {
        if (Date.now() > deadline) {
          throw new Error(`pgbouncer not up: ${(error as Error).message}; ${this.log()}`);
        }
        await sleep(100);
      }
    }
  }

  /** `databaseUrl` (of the test server) as reached through this pooler. */
  url(databaseUrl: string): string {
    const url = new URL(databaseUrl);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }

  /** An alias (or any database) of this pooler, as the test server's user. */
  aliasUrl(name: string): string {
    const url = new URL(this.server);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    url.pathname = `/${name}`;
    return url.toString();
  }

  /** One command of the admin console (`SHOW POOLS`, `SHOW STATS`, …): its rows. */
  async admin(command: string): Promise<Record<string, unknown>[]> {
    const client = new Client({ connectionString: this.aliasUrl('pgbouncer') });
    await client.connect();
    try {
      // The console speaks the simple protocol only: a query without parameters.
      return (await client.query(command)).rows;
    } finally {
      await client.end();
    }
  }

  /** The pooler's log so far. */
  log(): string {
    try {
      return readFileSync(join(this.dir, 'pgbouncer.log'), 'utf8');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGINT'); // a fast shutdown
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The user pgbouncer runs as: `postgres` when this process is root, else this process's own. */
function ownerIds(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
  return { uid: id('-u'), gid: id('-g') };
}
