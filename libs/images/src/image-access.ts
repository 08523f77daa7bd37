import { Inject, Injectable } from '@nestjs/common';
import { lookup } from 'node:dns/promises';
import {
  formatIp,
  guardedLookup,
  hostPatternMatches,
  isLiteralHostPattern,
  isOwnHostAddress,
  KilnException,
  parseIp,
  RecentValues,
  refusedAddressReason,
  splitHostPort,
  withTimeout,
} from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { CredentialsService, PullAuth } from './credentials.service';
import {
  fullName,
  imageIdProblem,
  isSharedImage,
  projectPrefix,
  registryHostOf,
} from './image-names';
import { RegistryClient, RegistryError } from './registry-client';

/** A project's right to a registry image, once confirmed, holds this long (per project and reference). */
const CONFIRMED_MS = 60_000;
const CONFIRMED_MAX = 10_000;
const DNS_TIMEOUT_MS = 3000;
const REGISTRY_TIMEOUT_MS = 15_000;

/** What a task of a project runs: the image as confirmed, and the login to pull it with. */
export interface ConfirmedImage {
  /** The reference given to the engine: the shared name, or `<registry>/<repository>@<digest>`. */
  image: string;
  /**
   * What to pull when the engine lacks `image`: the name as registered (with the platform
   * registry's own host), so the engine keeps the tag as a `docker pull` would.
   */
  pull: string;
  login: PullAuth | undefined;
}

/** A task may not run its image; `message` says why in words a user can act on. */
export class ImageAccessError extends Error {
  override name = 'ImageAccessError';
}

type Decision =
  | { kind: 'shared'; platform: boolean }
  | { kind: 'registry'; host: string; repository: string; platform: boolean; vouched: boolean };

/**
 * Which images a project may run, decided per (project, image): its own uploads (under
 * `kiln/<project id>/` in the platform registry), images it can pull from a registry with its own
 * credentials or anonymously, and images the operator shares (`KILN_SHARED_IMAGES`). An image
 * already on a worker's engine grants nothing: before a task runs a registry image, the worker
 * asks the registry for its manifest with the project's credentials and runs the digest it got.
 *
 * The platform registry is known by its addresses, not by how a reference spells its host
 * (`localhost`, `127.0.0.1`, `[::1]`, an alias). Other registries must be allowed by
 * `KILN_IMAGE_REGISTRIES`, and one on a loopback, private, link-local or metadata address only
 * when an entry names its host literally.
 */
@Injectable()
export class ImageAccess {
  private readonly confirmed = new RecentValues<ConfirmedImage>(CONFIRMED_MS, CONFIRMED_MAX);

  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly credentials: CredentialsService,
  ) {}

  /** At registration: refuses (400, or 403 for another project's uploads) what may never run. */
  async checkRegistration(projectId: string, ref: string): Promise<void> {
    const decision = await this.decide(projectId, ref);
    if (decision.kind === 'shared' || decision.platform || decision.vouched) return;
    const { host } = splitHostPort(decision.host);
    for (const address of await this.addressesOf(dnsName(host))) {
      const why = refusal(address);
      if (why) {
        throw KilnException.badRequest(
          `image "${ref}": registry ${decision.host} resolves to ${address}, ${why}: images may not come from there (see KILN_IMAGE_REGISTRIES)`,
        );
      }
    }
  }

  /**
   * Before a task runs: the image to give the engine and the login to pull it with, or an
   * `ImageAccessError`. A registry image is confirmed with a manifest request as the project
   * (remembered for a minute per project and reference). Aborting `signal` fails that request.
   */
  async confirm(projectId: string, ref: string, signal?: AbortSignal): Promise<ConfirmedImage> {
    const key = `${projectId} ${ref}`;
    const known = this.confirmed.get(key);
    if (known) return known;
    let decision: Decision;
    try {
      decision = await this.decide(projectId, ref);
    } catch (error) {
      if (error instanceof KilnException) throw new ImageAccessError(error.message);
      throw error;
    }
    const confirmed =
      decision.kind === 'shared'
        ? // Shared: run as the engine has it, pulled when missing: from the platform registry
          // (which takes no anonymous pulls) with Kiln's own login, from elsewhere anonymously.
          {
            image: ref,
            pull: ref,
            login: decision.platform ? this.platformLogin(registryHostOf(ref)) : undefined,
          }
        : await this.confirmRegistryImage(projectId, ref, decision, signal);
    this.confirmed.set(key, confirmed);
    return confirmed;
  }

  private async decide(projectId: string, ref: string): Promise<Decision> {
    const idProblem = imageIdProblem(ref);
    if (idProblem) throw KilnException.badRequest(idProblem);
    const host = registryHostOf(ref);
    const repository = fullName(ref).slice(host.length + 1);
    const platform = await this.isPlatform(host);
    // Before the shared names: no pattern of the operator's hands one project's uploads to another.
    if (
      platform &&
      repository.startsWith('kiln/') &&
      !repository.startsWith(projectPrefix(projectId))
    ) {
      throw KilnException.forbidden(`image "${ref}" belongs to another project's uploads`);
    }
    if (isSharedImage(this.config.images.sharedImages, ref)) return { kind: 'shared', platform };
    if (platform) return { kind: 'registry', host, repository, platform, vouched: true };
    const { host: name, port } = splitHostPort(host);
    const entries = this.config.images.registries.filter((entry) =>
      hostPatternMatches(entry, name, port),
    );
    if (entries.length === 0) {
      throw KilnException.badRequest(
        `image "${ref}": registry ${host} is not allowed on this server (KILN_IMAGE_REGISTRIES)`,
      );
    }
    return {
      kind: 'registry',
      host,
      repository,
      platform: false,
      vouched: entries.some(isLiteralHostPattern),
    };
  }

  private async confirmRegistryImage(
    projectId: string,
    ref: string,
    decision: Extract<Decision, { kind: 'registry' }>,
    signal: AbortSignal | undefined,
  ): Promise<ConfirmedImage> {
    const platform = this.config.registry;
    const own = decision.platform && decision.repository.startsWith(projectPrefix(projectId));
    const host = decision.platform ? platform!.host.toLowerCase() : decision.host;
    // Kiln's own login opens only the project's own uploads; any other repository of the platform
    // registry is the operator's, which a project runs only when it is shared.
    const login = own && platform ? this.platformLogin(host) : await this.login(projectId, host);
    const { host: name } = splitHostPort(decision.host);
    if (!decision.vouched && parseIp(name)) {
      const why = refusal(name);
      if (why) throw new ImageAccessError(`registry ${decision.host} is ${why}`);
    }
    const client = new RegistryClient(
      decision.platform ? platform!.baseUrl : registryBaseUrl(decision.host),
      login && { username: login.username, password: login.password },
      {
        timeoutMs: REGISTRY_TIMEOUT_MS,
        signal,
        lookup: decision.vouched
          ? undefined
          : guardedLookup((hostname, address) => {
              const why = refusal(address);
              return why && `refused: ${hostname} resolves to ${address}, ${why}`;
            }),
      },
    );
    const reference = ref.includes('@') ? ref.slice(ref.indexOf('@') + 1) : tagOf(ref);
    let digest: string;
    try {
      digest = await client.manifestDigest(decision.repository, reference);
    } catch (error) {
      if (!(error instanceof RegistryError)) throw error;
      throw new ImageAccessError(
        decision.platform && !own && (error.status === 401 || error.status === 403)
          ? `access denied by the registry: ${host} is the platform registry, whose images outside kiln/<project id>/ run only when the operator shares them (KILN_SHARED_IMAGES)`
          : registryRefusal(host, error, login !== undefined),
      );
    }
    const repository = `${host}/${decision.repository}`;
    return {
      image: `${repository}@${digest}`,
      pull: reference.startsWith('sha256:')
        ? `${repository}@${reference}`
        : `${repository}:${reference}`,
      login,
    };
  }

  /** Kiln's login to the platform registry (`KILN_REGISTRY_USERNAME`/`_PASSWORD`), if it has one. */
  private platformLogin(host: string): PullAuth | undefined {
    const platform = this.config.registry;
    if (!platform || platform.username === undefined) return undefined;
    return {
      username: platform.username,
      password: platform.password ?? '',
      serveraddress: host.toLowerCase(),
    };
  }

  private async login(projectId: string, host: string): Promise<PullAuth | undefined> {
    try {
      return (await this.credentials.authFor(projectId, host)) ?? undefined;
    } catch (error) {
      throw new ImageAccessError((error as Error).message);
    }
  }

  /** Whether `host` is the platform registry: the same port, and an address of it (or both this host's own). */
  private async isPlatform(host: string): Promise<boolean> {
    const platform = this.config.registry;
    if (!platform) return false;
    const mine = platform.host.toLowerCase();
    if (host === mine) return true;
    const ours = splitHostPort(mine);
    const theirs = splitHostPort(host);
    const defaultPort = platform.baseUrl.startsWith('https:') ? 443 : 80;
    if ((theirs.port ?? defaultPort) !== (ours.port ?? defaultPort)) return false;
    const [a, b] = await Promise.all([this.addressesOf(ours.host), this.addressesOf(theirs.host)]);
    const ownHost = (address: string) => isOwnHostAddress(parseIp(address)!);
    return b.some((address) => a.includes(address) || (ownHost(address) && a.some(ownHost)));
  }

  /** The addresses a name resolves to (an address literal is its own); none when it does not resolve. */
  private async addressesOf(name: string): Promise<string[]> {
    const literal = parseIp(name);
    if (literal) return [formatIp(literal)];
    try {
      const found = await withTimeout(
        lookup(name, { all: true }),
        DNS_TIMEOUT_MS,
        `no answer in ${DNS_TIMEOUT_MS} ms`,
      );
      return found.map((entry) => formatIp(parseIp(entry.address)!));
    } catch {
      return [];
    }
  }
}

/** Why no image may come from `address` (loopback, private, link-local, metadata …), or null. */
function refusal(address: string): string | null {
  const ip = parseIp(address);
  return ip ? refusedAddressReason(ip) : `"${address}" is not an IP address`;
}

/** Docker Hub's registry is reached at registry-1.docker.io. */
function dnsName(host: string): string {
  return host === 'docker.io' ? 'registry-1.docker.io' : host;
}

/** As Docker: plain HTTP for a registry on loopback, HTTPS otherwise. */
function registryBaseUrl(host: string): string {
  const { host: name, port } = splitHostPort(host);
  const ip = parseIp(name);
  const local = name === 'localhost' || (ip !== null && isOwnHostAddress(ip));
  const hostPart = name.includes(':') ? `[${name}]` : dnsName(name);
  return `${local ? 'http' : 'https'}://${hostPart}${port ? `:${port}` : ''}`;
}

function tagOf(ref: string): string {
  const path = ref.slice(ref.lastIndexOf('/') + 1);
  const colon = path.indexOf(':');
  return colon === -1 ? 'latest' : path.slice(colon + 1);
}

/** A registry's refusal, in the words of a failed pull. */
function registryRefusal(host: string, error: RegistryError, hadLogin: boolean): string {
  if (error.status === 401 || error.status === 403) {
    return `access denied by the registry (${accessHint(host, hadLogin)}): ${error.message}`;
  }
  if (error.status === 404) return `image not found in ${host}: manifest unknown`;
  return error.message;
}

/** What to do about a registry that refused the project's pull. */
export function accessHint(host: string, hadLogin: boolean): string {
  return hadLogin
    ? `the project's credentials for ${host} were refused`
    : `store a login for ${host} with POST /2/projects/{project_id}/credentials`;
}
