import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { OwnDatabase } from './database';
import { e2e } from './kiln';
import { AppName, startApp, startWorker, stopApp, waitForHealthy } from './processes';

export interface StackAnswer {
  status: number;
  body: any;
}

/**
 * A Kiln stack of a suite's own, out of the shared one's way: its own database (made and migrated
 * by `create`), queue prefix, admin token and API port (`KILN_TEST_API_PORT` + `portOffset`).
 * `start` runs its processes, `close` stops them and drops the database.
 */
export class OwnStack {
  readonly database: OwnDatabase;
  readonly port: number;
  readonly url: string;
  readonly adminToken = `admin-${randomBytes(8).toString('hex')}`;
  /** What every process of the stack gets; `create` fills it, a suite may add to it before `start`. */
  env: Record<string, string> = {};
  private readonly children = new Set<ChildProcess>();

  constructor(
    private readonly name: string,
    portOffset: number,
  ) {
    this.database = new OwnDatabase(`kiln_${name}`);
    this.port = Number(process.env.KILN_TEST_API_PORT ?? 18080) + portOffset;
    this.url = `http://127.0.0.1:${this.port}`;
  }

  /** Makes the database; `databaseUrl` (e.g. through a proxy) is what the processes use. */
  async create(extra: Record<string, string> = {}, databaseUrl = this.database.url): Promise<void> {
    await this.database.create();
    this.env = {
      ...e2e().env,
      DATABASE_URL: databaseUrl,
      KILN_API_PORT: String(this.port),
      KILN_ADMIN_TOKEN: this.adminToken,
      KILN_QUEUE_PREFIX: `kiln-${this.name}-${randomBytes(3).toString('hex')}`,
      ...extra,
    };
  }

  start(app: AppName, extra: Record<string, string> = {}, label: string = app): ChildProcess {
    return this.track(startApp(app, { ...this.env, ...extra }, `${this.name}-${label}`));
  }

  /** Starts the API and resolves once it is healthy. */
  async startApi(extra: Record<string, string> = {}): Promise<ChildProcess> {
    const api = this.start('api', extra);
    await waitForHealthy(`${this.url}/healthz`);
    return api;
  }

  /**
   * Starts a worker on a health port of its own and resolves once it is healthy. Its id is the
   * stack's queue prefix and `label` unless `extra` names one: no other run's worker reaps its
   * containers.
   */
  async startWorker(extra: Record<string, string> = {}, label = 'worker'): Promise<ChildProcess> {
    const env = { KILN_WORKER_ID: `${this.env.KILN_QUEUE_PREFIX}-${label}`, ...this.env, ...extra };
    return this.track(await startWorker(env, `${this.name}-${label}`));
  }

  async request(
    method: string,
    path: string,
    json?: unknown,
    token = this.adminToken,
  ): Promise<StackAnswer> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: { authorization: `OAuth ${token}`, 'content-type': 'application/json' },
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: the text as it is
    }
    return { status: res.status, body };
  }

  /**
   * Calls on one project's routes (`/2/projects/{id}` + path) with its token that must answer
   * 200: the answer's body, or an error naming the answer.
   */
  projectApi(project: { id: string; token: string }) {
    return async (method: string, path: string, json?: unknown): Promise<any> => {
      const answer = await this.request(
        method,
        `/2/projects/${project.id}${path}`,
        json,
        project.token,
      );
      if (answer.status !== 200) {
        throw new Error(`${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
      }
      return answer.body;
    };
  }

  /** A project of the stack and a token for it. */
  async newProject(name: string): Promise<{ id: string; token: string }> {
    const created = await this.request('POST', '/2/projects', { name });
    const issued = await this.request('POST', `/2/projects/${created.body.id}/tokens`, {});
    if (created.status !== 200 || issued.status !== 200) {
      throw new Error(`project not made: ${created.status} ${issued.status}`);
    }
    return { id: created.body.id, token: issued.body.token };
  }

  /** Lets the project queue to `cluster` (`default` needs no grant). */
  async grant(projectId: string, cluster: string): Promise<void> {
    const granted = await this.request(
      'PUT',
      `/2/projects/${projectId}/clusters/${encodeURIComponent(cluster)}`,
    );
    if (granted.status !== 200) throw new Error(`cluster not granted: ${granted.status}`);
  }

  private track(child: ChildProcess): ChildProcess {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Stops every process still running, keeping the database (a restart with other settings). */
  async stopProcesses(): Promise<void> {
    await Promise.all([...this.children].map((child) => stopApp(child)));
  }

  /** Stops every process still running, then drops the database. */
  async close(): Promise<void> {
    await this.stopProcesses();
    await this.database.drop();
  }
}
