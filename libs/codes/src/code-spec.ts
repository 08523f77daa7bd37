import { LIMITS } from '@kiln/client';
import { FieldReader, JsonObject, KilnException } from '@kiln/common';
import { MIN_CPUS, MIN_MEMORY_MB, Stack } from '@kiln/config';

/** What a registration asks for; each registration is a whole new revision of the code. */
export interface CodeSpec {
  name: string;
  image: string;
  command: string;
  config: string;
  envVars: Record<string, string>;
  maxConcurrency: number | null;
  retries: number;
  retriesDelay: number;
  defaultPriority: number;
  /** CPUs its tasks may use; null: the operator's default. */
  cpus: number | null;
  /** Memory limit of its tasks, MiB; null: the operator's default. */
  memoryMb: number | null;
  /** Hot mode (docs/hot.md); null: cold, a container per task. */
  hot: HotSetting | null;
  /**
   * The zip package its tasks unpack into their directory (`sha256:<hex>`), set by the upload that
   * stored it, never by the registration's own fields; null: image only.
   */
  zipDigest: string | null;
}

/** A hot code's pool settings (docs/hot.md, "Turning it on"). */
export interface HotSetting {
  /** Seconds a warm container may wait for its next task. */
  idleTimeout: number;
  /** Tasks one container runs before it is replaced. */
  maxTasks: number;
  /** Warm containers of the code on one worker. */
  maxContainers: number;
}

export const HOT_DEFAULTS: HotSetting = { idleTimeout: 30, maxTasks: 1000, maxContainers: 2 };
const HOT_FIELDS: Record<string, [keyof HotSetting, readonly [number, number]]> = {
  idle_timeout: ['idleTimeout', LIMITS.hotIdleTimeout],
  max_tasks: ['maxTasks', LIMITS.hotMaxTasks],
  // At most the operator's KILN_HOT_CODE_MAX_CONTAINERS too.
  max_containers: ['maxContainers', LIMITS.hotMaxContainers],
};

/**
 * The most a code may ask for: `KILN_CONTAINER_CPUS_MAX` and `KILN_CONTAINER_MEMORY_MB_MAX`
 * (`KilnConfig['container']` fits).
 */
export interface CodeLimits {
  cpusMax: number;
  memoryMbMax: number;
  /** The most `hot.max_containers` a code may ask for: `KILN_HOT_CODE_MAX_CONTAINERS`. */
  hotCodeMaxContainers: number;
}

export const MAX_RETRIES = LIMITS.retries[1];
export const MAX_RETRIES_DELAY = LIMITS.retriesDelay[1];
/** Tasks of one code running at once; 0 or -1 (IronWorker's "unset") mean no limit. */
export const MAX_CONCURRENCY = LIMITS.maxConcurrency[1];
const MAX_SETTING_BYTES = 64 * 1024;

// A Docker reference: [host[:port]/]path[:tag][@sha256:digest]. As in Docker, the first component
// is a host only if it has a dot or a port or is "localhost" (or an IPv6 address in brackets);
// path components are lowercase.
const HOST =
  '(?:(?:localhost|[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+|\\[[0-9A-Fa-f:.]+\\])(?::[0-9]{1,5})?|[A-Za-z0-9-]+:[0-9]{1,5})';
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const IMAGE_REF = new RegExp(
  `^(?:${HOST}/)?${COMPONENT}(?:/${COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$`,
);

export function isImageReference(value: string): boolean {
  return value.length <= 512 && IMAGE_REF.test(value);
}

/** A code name as given in a path or a registration. */
export function parseCodeName(name: string): string {
  if (name === '') throw KilnException.badRequest('name is required');
  if (Buffer.byteLength(name) > 255) throw KilnException.tooLarge('name is larger than 255 bytes');
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (/[\u0000-\u001f]/.test(name)) {
    throw KilnException.badRequest('name must not contain control characters');
  }
  return name;
}

/**
 * Parses the registration `data` object. It tolerates what IronWorker's clients really send:
 * `default_priority: -1000` from `iron register`, `""` for the deprecated `runtime`/`file_name`/
 * `stack`, `env_vars: null`, `config` as an object (Ruby), and extra keys (PHP).
 */
export function parseCodeSpec(
  data: JsonObject,
  limits: CodeLimits,
  options: { imageOptional?: boolean } = {},
): CodeSpec {
  const read = new FieldReader(data);
  const name = parseCodeName(read.requiredString('name', 255));
  const image = read.string('image', 512) ?? '';
  // With an upload (`imageOptional`) the image comes with the request and is set once pushed.
  if (image === '' && !options.imageOptional) {
    throw KilnException.badRequest(
      'image is required: Kiln runs Docker images (register one with "image": "repo/name:tag")',
    );
  }
  if (image !== '' && !isImageReference(image)) {
    throw KilnException.badRequest(`image "${image}" is not a valid Docker image reference`);
  }
  const rawConfig = data.config;
  const config =
    rawConfig !== null && typeof rawConfig === 'object'
      ? JSON.stringify(rawConfig)
      : (read.string('config') ?? '');
  if (Buffer.byteLength(config) > MAX_SETTING_BYTES) {
    throw KilnException.tooLarge(`config is larger than ${MAX_SETTING_BYTES} bytes`);
  }
  const maxConcurrency = read.int('max_concurrency', { min: -1, max: MAX_CONCURRENCY });
  return {
    name,
    image,
    command: read.string('command', 4096) ?? '',
    config,
    envVars: read.stringMap('env_vars', MAX_SETTING_BYTES) ?? {},
    maxConcurrency: maxConcurrency === undefined || maxConcurrency <= 0 ? null : maxConcurrency,
    retries: read.int('retries', { min: 0, max: MAX_RETRIES }) ?? 0,
    retriesDelay: read.int('retries_delay', { min: 0, max: MAX_RETRIES_DELAY }) ?? 0,
    defaultPriority:
      read.lenientInt('default_priority', ...LIMITS.priority) ??
      read.lenientInt('priority', ...LIMITS.priority) ??
      0,
    cpus: parseCpus(data.cpus, limits.cpusMax),
    memoryMb: parseMemory(data.memory, limits.memoryMbMax),
    hot: parseHot(data.hot, limits.hotCodeMaxContainers),
    zipDigest: null,
  };
}

/**
 * Parses the registration of a zip code package: as {@link parseCodeSpec}, with IronWorker's
 * older fields honoured. With no `image`, the image of the stack `stack` names, or else of the
 * operator's first (default) stack; with no `command`, `<runtime> <file_name>` (the Node, Ruby,
 * PHP and Python clients send `"runtime": "sh", "file_name": "__runner__.sh"`).
 */
export function parseZipCodeSpec(
  data: JsonObject,
  limits: CodeLimits,
  stacks: readonly Stack[],
): CodeSpec {
  const spec = parseCodeSpec(data, limits, { imageOptional: true });
  const read = new FieldReader(data);
  const stackName = read.string('stack', 64) ?? '';
  const fileName = read.string('file_name', 1024) ?? '';
  const runtime = read.string('runtime', 64) || 'sh';
  const command = spec.command.trim() || (fileName && `${runtime} ${fileName}`);
  if (!command) {
    throw KilnException.badRequest(
      'a zip package needs "command" (or "file_name"): what to run among its files',
    );
  }
  return { ...spec, image: spec.image || stackImage(stacks, stackName), command };
}

function stackImage(stacks: readonly Stack[], name: string): string {
  const names = stacks.map((stack) => stack.name).join(', ') || 'none';
  if (name === '') {
    if (stacks.length) return stacks[0].image;
    throw KilnException.badRequest(
      'a zip package needs "image" (or a "stack"); this server has no stacks (GET /2/stacks)',
    );
  }
  const stack = stacks.find((candidate) => candidate.name === name);
  if (!stack) {
    throw KilnException.badRequest(`no stack "${name}" on this server (stacks: ${names})`);
  }
  return stack.image;
}

/**
 * A code's `hot`: an object whose fields each default (`{}` takes them all); `null`, `false` or
 * absent: cold. Unknown fields are refused, so a misspelt setting is not silently the default.
 */
export function parseHot(value: unknown, maxContainers: number): HotSetting | null {
  if (value === undefined || value === null || value === false) return null;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw KilnException.badRequest(
      'hot must be an object such as {"idle_timeout": 30, "max_tasks": 1000, "max_containers": 2}, or null for cold',
    );
  }
  const hot = { ...HOT_DEFAULTS };
  for (const [field, given] of Object.entries(value)) {
    const known = HOT_FIELDS[field];
    if (!known) {
      throw KilnException.badRequest(
        `hot.${field} is not a setting (idle_timeout, max_tasks, max_containers)`,
      );
    }
    const [key, [min, fieldMax]] = known;
    const top = Math.min(fieldMax, key === 'maxContainers' ? maxContainers : Infinity);
    if (typeof given !== 'number' || !Number.isInteger(given) || given < min || given > top) {
      throw KilnException.badRequest(`hot.${field} must be a whole number from ${min} to ${top}`);
    }
    hot[key] = given;
  }
  return hot;
}

/**
 * A code's `cpus`: a number such as `0.5` or `2`, from Docker's smallest CPU limit to the
 * operator's maximum. Absent or null: the operator's default.
 */
function parseCpus(value: unknown, max: number): number | null {
  if (value === undefined || value === null) return null;
  const range = `a number of CPUs from ${MIN_CPUS} to ${max}, this server's maximum`;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw KilnException.badRequest(`cpus must be ${range}`);
  }
  if (value < MIN_CPUS) {
    throw KilnException.badRequest(`cpus must be at least ${MIN_CPUS} (${range})`);
  }
  if (value > max) throw KilnException.badRequest(`cpus must be at most ${max} (${range})`);
  return value;
}

/** A code's `memory`, whole MiB, from Docker's smallest limit to the operator's maximum. */
function parseMemory(value: unknown, max: number): number | null {
  if (value === undefined || value === null) return null;
  const range = `a whole number of MB from ${MIN_MEMORY_MB} to ${max}, this server's maximum`;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw KilnException.badRequest(`memory must be ${range}`);
  }
  if (value < MIN_MEMORY_MB) {
    throw KilnException.badRequest(`memory must be at least ${MIN_MEMORY_MB} (${range})`);
  }
  if (value > max) throw KilnException.badRequest(`memory must be at most ${max} (${range})`);
  return value;
}
