import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * The client's one reader of the process environment. The client is a package of its own and
 * cannot use the server's libs/config, so the variables it honours (`KILN_*`, `IRON_*`,
 * `KILN_CONFIG_FILE`, `XDG_CONFIG_HOME`) are read here and only here; the CLI reads them through
 * this module too.
 */
export type Environment = Record<string, string | undefined>;

export function processEnvironment(): Environment {
  return process.env;
}

/** Where a Kiln is and who calls it. */
export interface KilnSettings {
  /** Base URL of the API, e.g. `http://127.0.0.1:8080`. */
  url: string;
  projectId: string;
  token: string;
}

export type SettingName = keyof KilnSettings;

/** Where each setting came from, for `kiln login --show` and error messages. */
export type SettingOrigins = Partial<Record<SettingName, string>>;

export interface SettingSources {
  /** Given explicitly (constructor options, CLI flags): always win. */
  explicit?: Partial<KilnSettings>;
  /** Environment (`KILN_*`, `IRON_WORKER_*`, `IRON_*`). Default the process's environment. */
  env?: Environment;
  /** Directory whose `iron.json` is read. Default `process.cwd()`; `null` = none. */
  cwd?: string | null;
  /** Saved config (`kiln login`). Default `configFile(env)`; `null` = none. */
  configFile?: string | null;
}

/** When nothing says otherwise: the API `npm start` runs. */
export const DEFAULT_URL = 'http://127.0.0.1:8080';

/**
 * Resolves each setting with IronWorker's precedence, highest first: explicit values (flags),
 * the environment (`KILN_URL`, `KILN_PROJECT_ID`, `KILN_TOKEN`, then `IRON_WORKER_*`, then
 * `IRON_*` incl. `IRON_HOST`/`IRON_PORT`/`IRON_SCHEME`), `iron.json` in the working directory,
 * then the saved config of `kiln login`. The URL defaults to `DEFAULT_URL`.
 */
export function resolveSettings(sources: SettingSources = {}): {
  settings: Partial<KilnSettings>;
  origins: SettingOrigins;
} {
  const env = sources.env ?? processEnvironment();
  const layers: [string, Partial<KilnSettings>][] = [['flags', sources.explicit ?? {}]];
  layers.push(['environment', fromEnv(env)]);
  const cwd = sources.cwd === undefined ? process.cwd() : sources.cwd;
  if (cwd !== null) layers.push(['iron.json', fromIronJson(readJson(join(cwd, 'iron.json')))]);
  const file = sources.configFile === undefined ? configFile(env) : sources.configFile;
  if (file !== null) layers.push([file, fromSaved(readJson(file))]);
  layers.push(['default', { url: DEFAULT_URL }]);
  const settings: Partial<KilnSettings> = {};
  const origins: SettingOrigins = {};
  for (const name of ['url', 'projectId', 'token'] as const) {
    for (const [origin, layer] of layers) {
      const value = layer[name];
      if (typeof value === 'string' && value.trim() !== '') {
        settings[name] = name === 'url' ? value.trim().replace(/\/+$/, '') : value.trim();
        origins[name] = origin;
        break;
      }
    }
  }
  return { settings, origins };
}

/** The saved config's path: `KILN_CONFIG_FILE`, else `$XDG_CONFIG_HOME/kiln/config.json`, else `~/.config/kiln/config.json`. */
export function configFile(env: Environment = processEnvironment()): string {
  if (env.KILN_CONFIG_FILE) return env.KILN_CONFIG_FILE;
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'kiln', 'config.json');
}

/** Writes the saved config (readable by its owner only: it holds a token). */
export function saveSettings(file: string, settings: KilnSettings): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(
    file,
    `${JSON.stringify({ url: settings.url, project_id: settings.projectId, token: settings.token }, null, 2)}\n`,
    { mode: 0o600 },
  );
  chmodSync(file, 0o600);
}

function fromEnv(env: Environment): Partial<KilnSettings> {
  const pick = (...names: string[]): string | undefined =>
    names.map((name) => env[name]).find((value) => value !== undefined && value.trim() !== '');
  return {
    url:
      pick('KILN_URL') ??
      ironUrl(
        pick('IRON_WORKER_HOST', 'IRON_HOST'),
        pick('IRON_WORKER_PORT', 'IRON_PORT'),
        pick('IRON_WORKER_SCHEME', 'IRON_SCHEME'),
      ),
    projectId: pick('KILN_PROJECT_ID', 'IRON_WORKER_PROJECT_ID', 'IRON_PROJECT_ID'),
    token: pick('KILN_TOKEN', 'IRON_WORKER_TOKEN', 'IRON_TOKEN'),
  };
}

function fromIronJson(json: Record<string, unknown> | undefined): Partial<KilnSettings> {
  if (!json) return {};
  const port = typeof json.port === 'number' ? String(json.port) : str(json.port);
  return {
    url: ironUrl(str(json.host), port, str(json.scheme)),
    projectId: str(json.project_id),
    token: str(json.token),
  };
}

function fromSaved(json: Record<string, unknown> | undefined): Partial<KilnSettings> {
  if (!json) return {};
  return { url: str(json.url), projectId: str(json.project_id), token: str(json.token) };
}

/**
 * IronWorker's host/port/scheme as a URL. The scheme defaults to `http` for a loopback host
 * (a local Kiln) and to IronWorker's `https` otherwise.
 */
function ironUrl(host?: string, port?: string, scheme?: string): string | undefined {
  if (!host) return undefined;
  const local = /^(localhost|127\.\d+\.\d+\.\d+|\[?::1\]?)$/.test(host);
  const proto = (scheme ?? (local ? 'http' : 'https')).replace(/:?\/*$/, '');
  const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${proto}://${bracketed}${port ? `:${port}` : ''}`;
}

function readJson(path: string): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object'
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    throw new Error(`${path} is not valid JSON`);
  }
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
