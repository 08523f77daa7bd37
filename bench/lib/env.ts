import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MIGRATE, migrate as migrateDatabase, withClient } from '../../test/support/database';
import { ENTRY, KILN_HOME, ROOT } from '../../test/support/processes';

/** Results, logs, profiles and the snapshot of dist/ the benchmarks run. */
export const BENCH_HOME = join(KILN_HOME, 'bench');
export const LOG_DIR = join(BENCH_HOME, 'log');
export const APP_DIR = join(BENCH_HOME, 'app');

export interface Infra {
  /** The benchmarks' own database (`kiln_bench` unless KILN_BENCH_DB says otherwise). */
  databaseUrl: string;
  redisUrl: string;
  dockerSocket: string;
  /** The platform registry (`host:port`), when the infrastructure runs one. */
  registryUrl?: string;
  /** Its login (scripts/infra.sh's registry takes no anonymous requests). */
  registryUsername?: string;
  registryPassword?: string;
}

/** Reads `export NAME='value'` lines as written by scripts/infra.sh. */
function readEnvFile(path: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const match = /^export ([A-Z_][A-Z0-9_]*)='(.*)'$/.exec(line.trim());
    if (match) vars[match[1]] = match[2].replace(/'\\''/g, "'");
  }
  return vars;
}

/**
 * The connections to use: DATABASE_URL, REDIS_URL and DOCKER_SOCKET from the environment when all
 * three are set, otherwise `scripts/infra.sh up` (idempotent) and its `.kiln/env`.
 */
export function loadInfra(): Infra {
  let vars: Record<string, string | undefined> = process.env;
  if (!vars.DATABASE_URL || !vars.REDIS_URL || !vars.DOCKER_SOCKET) {
    console.log('[bench] scripts/infra.sh up');
    const up = spawnSync('bash', [join(ROOT, 'scripts', 'infra.sh'), 'up'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    if (up.status !== 0) {
      throw new Error(`scripts/infra.sh up failed:\n${up.stdout}${up.stderr}`);
    }
    vars = { ...process.env, ...readEnvFile(join(KILN_HOME, 'env')) };
  }
  const database = process.env.KILN_BENCH_DB ?? 'kiln_bench';
  const url = new URL(vars.DATABASE_URL!);
  url.pathname = `/${database}`;
  return {
    databaseUrl: url.toString(),
    redisUrl: vars.REDIS_URL!,
    dockerSocket: vars.DOCKER_SOCKET!,
    registryUrl: vars.REGISTRY_URL,
    registryUsername: vars.KILN_REGISTRY_USERNAME,
    registryPassword: vars.KILN_REGISTRY_PASSWORD,
  };
}

/** Creates the benchmark database if it is missing (connecting to the server's `postgres` db). */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  url.pathname = '/postgres';
  await withClient(url.toString(), async (admin) => {
    const found = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) await admin.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
  });
}

/** Drops everything in the benchmark database (its `public` schema). */
export async function resetSchema(databaseUrl: string): Promise<void> {
  await withClient(databaseUrl, (db) =>
    db.query('DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;'),
  );
}

/** Applies Kiln's migrations with the snapshot's own migrate.js. */
export function migrate(infra: Infra): void {
  migrateDatabase(infra.databaseUrl, APP_DIR, {
    REDIS_URL: infra.redisUrl,
    DOCKER_SOCKET: infra.dockerSocket,
  });
}

/**
 * Copies dist/ to .kiln/bench/app/dist so that a rebuild running meanwhile (`npm run build` by
 * someone else) cannot change the code under measurement halfway. Node still resolves packages
 * from the repository's node_modules (it walks up from .kiln/bench/app).
 */
export function snapshotDist(): string {
  const source = join(ROOT, 'dist');
  for (const entry of [...Object.values(ENTRY), MIGRATE]) {
    if (!existsSync(join(ROOT, entry))) {
      throw new Error(`${entry} is missing: run \`npm run build\` first`);
    }
  }
  rmSync(APP_DIR, { recursive: true, force: true });
  mkdirSync(APP_DIR, { recursive: true });
  cpSync(source, join(APP_DIR, 'dist'), { recursive: true });
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' })
      .trim()
      .concat(
        execFileSync('git', ['status', '--porcelain', 'apps', 'libs', 'migrations'], {
          cwd: ROOT,
          encoding: 'utf8',
        }).trim()
          ? '+uncommitted changes'
          : '',
      );
  } catch {
    // not a git checkout: keep "unknown"
  }
  return commit;
}

export function writeResult(name: string, result: unknown): string {
  mkdirSync(BENCH_HOME, { recursive: true });
  const path = join(BENCH_HOME, `${name}.json`);
  writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
  return path;
}

/** An integer setting from the environment, e.g. KILN_BENCH_INGEST_TASKS. */
export function setting(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be an integer >= 0`);
  return value;
}
