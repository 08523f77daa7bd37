import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Client } from 'pg';
import { ROOT } from './processes';

/**
 * A database of a suite's own on the test server (for suites that run a stack of their own, out
 * of the shared one's way): `create()` makes and migrates it, `drop()` removes it again.
 */
export class OwnDatabase {
  readonly name: string;
  readonly url: string;
  private readonly server: string;

  constructor(prefix: string) {
    this.name = `${prefix}_${randomBytes(3).toString('hex')}`;
    const server = new URL(process.env.TEST_DATABASE_URL!);
    this.server = server.toString();
    server.pathname = `/${this.name}`;
    this.url = server.toString();
  }

  async create(): Promise<void> {
    await this.onServer(`CREATE DATABASE ${this.name}`);
    execFileSync(process.execPath, [join(ROOT, 'dist/libs/database/src/migrate.js')], {
      env: { ...process.env, DATABASE_URL: this.url },
    });
  }

  async drop(): Promise<void> {
    await this.onServer(`DROP DATABASE IF EXISTS ${this.name} WITH (FORCE)`);
  }

  private async onServer(sql: string): Promise<void> {
    const server = new Client({ connectionString: this.server });
    await server.connect();
    try {
      await server.query(sql);
    } finally {
      await server.end();
    }
  }
}
