import { createHash } from 'node:crypto';

/**
 * The repository an uploaded image of code `codeName` goes to in the platform registry:
 * `kiln/<project id>/<name>`. The path comes from the project id, never from the tarball, so one
 * tenant cannot write where another's images live. A code name that is not a valid repository
 * component as it stands (IronWorker allows `user/hello`, capitals, spaces) is lowercased, its other
 * characters turned into `-`, and a hash of the original name appended so names stay distinct.
 */
export function uploadRepository(projectId: string, codeName: string): string {
  return `${projectPrefix(projectId)}${repositoryComponent(codeName)}`;
}

/**
 * The repository holding a project's zip code packages: `kiln/<project id>/zip/packages`. Two
 * components after the project id, so no code name's image repository can be it, and the project
 * id from the request, so one project's zips can never be read through another's repository.
 */
export function zipRepository(projectId: string): string {
  return `${projectPrefix(projectId)}zip/packages`;
}

/** Every repository of a project's uploads starts with this. */
export function projectPrefix(projectId: string): string {
  return `kiln/${projectId}/`;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

export function repositoryComponent(codeName: string): string {
  if (codeName.length <= 100 && COMPONENT.test(codeName)) return codeName;
  const slug = codeName
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60)
    .replace(/-+$/, '');
  const hash = createHash('sha256').update(codeName).digest('hex').slice(0, 10);
  return slug ? `${slug}-${hash}` : hash;
}

/**
 * The registry host of an image reference, as Docker reads it: the first path component when it
 * has a dot or a port or is `localhost`, otherwise Docker Hub (`docker.io`).
 */
export function registryHostOf(ref: string): string {
  const slash = ref.indexOf('/');
  if (slash === -1) return 'docker.io';
  const first = ref.slice(0, slash);
  return /[.:]/.test(first) || first === 'localhost' ? normalizeHost(first) : 'docker.io';
}

/** The repository path of a reference (no host, no tag, no digest). */
export function repositoryOf(ref: string): string {
  const host = registryHostOf(ref);
  let path = ref;
  if (
    host !== 'docker.io' ||
    /^(docker\.io|index\.docker\.io|registry-1\.docker\.io)\//.test(ref)
  ) {
    path = ref.slice(ref.indexOf('/') + 1);
  }
  path = path.split('@')[0];
  const colon = path.lastIndexOf(':');
  return colon > path.lastIndexOf('/') ? path.slice(0, colon) : path;
}

/**
 * The registry a credential is for, from what `docker login` / `iron docker login` send as
 * `serveraddress`: a host, `host:port`, or a URL (`https://index.docker.io/v1/`). Docker Hub's
 * names all become `docker.io`.
 */
export function normalizeServerAddress(address: string): string {
  let host = address.trim();
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(host);
  if (scheme) host = host.slice(scheme[0].length);
  host = host.split('/')[0];
  return normalizeHost(host);
}

function normalizeHost(host: string): string {
  const lower = host.toLowerCase();
  return ['index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com'].includes(lower)
    ? 'docker.io'
    : lower;
}

/**
 * Why `ref` names an image by its id rather than by a name, or null. The engine runs an image id
 * (`sha256:<hex>`, 64 bare hex digits, or any bare hex prefix of an id) whoever put the image
 * there, so such references are never taken: an image is run by name, checked per project.
 */
export function imageIdProblem(ref: string): string | null {
  if (/^sha256:/i.test(ref)) {
    return `image "${ref}" is an image id (sha256:…): register an image by its name (repository[:tag] or repository@sha256:digest)`;
  }
  if (/^[a-f0-9]+$/.test(ref)) {
    return `image "${ref}" is all hex digits, which the engine reads as an image id: register an image by its name (repository[:tag])`;
  }
  return null;
}

/**
 * `<registry>/<repository>` as Docker reads a reference: Docker Hub's names get `docker.io/` and,
 * for a single component, `library/` (`busybox` → `docker.io/library/busybox`).
 */
export function fullName(ref: string): string {
  const host = registryHostOf(ref);
  const repository = repositoryOf(ref);
  return host === 'docker.io' && !repository.includes('/')
    ? `docker.io/library/${repository}`
    : `${host}/${repository}`;
}

/**
 * Whether `ref` is named by one of the `KILN_SHARED_IMAGES` patterns (any tag or digest of it):
 * `*` matches within one path component, `**` across components.
 */
export function isSharedImage(patterns: readonly string[], ref: string): boolean {
  const name = fullName(ref);
  return patterns.some((pattern) => namePattern(pattern).test(name));
}

function namePattern(pattern: string): RegExp {
  const source = fullName(pattern);
  const regex = source
    .split('**')
    .map((part) =>
      part
        .split('*')
        .map((text) => text.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('[^/]*'),
    )
    .join('.*');
  return new RegExp(`^${regex}$`);
}
