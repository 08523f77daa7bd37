import { Codes } from './codes';
import { Credentials } from './credentials';
import { KilnError } from './errors';
import { Transport } from './http';
import { Schedules } from './schedules';
import { Environment, KilnSettings, SettingOrigins, resolveSettings } from './settings';
import { Tasks } from './tasks';
import { Tokens } from './tokens';
import { Triggers } from './triggers';
import { Webhooks } from './webhooks';
import { LogDrains } from './log-drains';

export interface KilnOptions {
  /** API base URL. Default: `KILN_URL`, `IRON_HOST`…, `iron.json`, the saved config, then `http://127.0.0.1:8080`. */
  url?: string;
  /** Default: `KILN_PROJECT_ID`, `IRON_PROJECT_ID`, `iron.json`, then the saved config. */
  projectId?: string;
  /** Default: `KILN_TOKEN`, `IRON_TOKEN`, `iron.json`, then the saved config. */
  token?: string;
  /** Extra tries of an idempotent call after a 503, 408 or network error. Default 4. */
  retries?: number;
  /** First retry pause, ms, doubled each time (with jitter). Default 250. */
  retryDelayMs?: number;
  /** Longest retry pause, ms. Default 5000. */
  maxRetryDelayMs?: number;
  /** Time limit of one request, ms (log streams excepted). Default 30000. */
  timeoutMs?: number;
  /** Where `iron.json` is looked for; `null` = nowhere. Default the working directory. */
  cwd?: string | null;
  /** The saved config (`kiln login`); `null` = none. Default `~/.config/kiln/config.json` (`KILN_CONFIG_FILE`). */
  configFile?: string | null;
  /** Environment to read settings from. Default the process's environment. */
  env?: Environment;
}

/**
 * A Kiln API client.
 * @example
 * const kiln = new Kiln(); // settings from KILN_* / IRON_* variables or iron.json
 * const { id } = await kiln.tasks.create('hello', { a: 1 });
 * for await (const line of kiln.tasks.follow(id)) console.log(line);
 */
export class Kiln {
  readonly tasks: Tasks;
  readonly codes: Codes;
  readonly schedules: Schedules;
  readonly webhooks: Webhooks;
  readonly logDrains: LogDrains;
  readonly triggers: Triggers;
  readonly credentials: Credentials;
  readonly tokens: Tokens;
  /** The settings in use and where each came from. */
  readonly settings: KilnSettings;
  readonly origins: SettingOrigins;

  constructor(options: KilnOptions = {}) {
    const { settings, origins } = resolveSettings({
      explicit: { url: options.url, projectId: options.projectId, token: options.token },
      env: options.env,
      cwd: options.cwd,
      configFile: options.configFile,
    });
    const missing = (['projectId', 'token'] as const).filter((name) => !settings[name]);
    if (missing.length > 0) {
      throw new KilnError(
        0,
        `no ${missing.map((m) => (m === 'token' ? 'token' : 'project id')).join(' and ')}: pass it (kiln: --project-id, --token), set KILN_PROJECT_ID and KILN_TOKEN (or IRON_*), use an iron.json, or run \`kiln login\``,
      );
    }
    this.settings = settings as KilnSettings;
    this.origins = origins;
    const http = new Transport({
      url: this.settings.url,
      token: this.settings.token,
      retries: options.retries ?? 4,
      retryDelayMs: options.retryDelayMs ?? 250,
      maxRetryDelayMs: options.maxRetryDelayMs ?? 5000,
      timeoutMs: options.timeoutMs ?? 30_000,
      userAgent: 'kiln-client/0.1',
    });
    const base = `/2/projects/${encodeURIComponent(this.settings.projectId)}`;
    this.tasks = new Tasks(http, base);
    this.codes = new Codes(http, base);
    this.schedules = new Schedules(http, base);
    this.webhooks = new Webhooks(http, base);
    this.logDrains = new LogDrains(http, base);
    this.triggers = new Triggers(http, base);
    this.credentials = new Credentials(http, base);
    this.tokens = new Tokens(http, base);
  }
}
