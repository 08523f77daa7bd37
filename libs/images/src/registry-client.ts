import { createReadStream } from 'node:fs';
import http, { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import https from 'node:https';
import { LookupFunction } from 'node:net';
import { Readable } from 'node:stream';
import type { PlatformRegistry } from '@kiln/config';

export interface RegistryAuth {
  username: string;
  password: string;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** A 200's body, unread, when the request asked for it streamed. */
  stream?: IncomingMessage;
}

/** Bodies of answers are read into memory up to this size (errors, token answers, manifests). */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

/** Every manifest type Docker pulls, so the registry answers the digest Docker would record. */
const MANIFEST_TYPES = [
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
].join(', ');

export interface RegistryClientOptions {
  /** Resolves host names for every connection (the registry's and a token realm's). */
  lookup?: LookupFunction;
  /** A request with no answer this long fails. */
  timeoutMs?: number;
  /** Aborting it fails every request at once (a task cancelled or past its pull deadline). */
  signal?: AbortSignal;
}

export class RegistryError extends Error {
  override name = 'RegistryError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/**
 * The registry HTTP API (distribution v2), as far as a push needs it (blob existence, monolithic
 * blob upload streamed from a file, manifest upload) and a pull's first step (a manifest's
 * digest). Authenticates with Basic credentials, or with a Bearer token fetched from the realm a
 * 401 names (Harbor, GCR, ECR's token service; anonymously when it has no credentials).
 */
export class RegistryClient {
  private authorization: string | undefined;

  constructor(
    /** `http(s)://host[:port]` */
    private readonly baseUrl: string,
    private readonly auth?: RegistryAuth,
    private readonly options: RegistryClientOptions = {},
  ) {}

  /**
   * The digest of the manifest `reference` (a tag or a digest) of `repository`, as a pull would
   * get it, with pull rights only: a `RegistryError` with the registry's status when it refuses
   * (401, 403) or has no such manifest (404).
   */
  async manifestDigest(repository: string, reference: string): Promise<string> {
    const answer = await this.call('HEAD', `/v2/${repository}/manifests/${reference}`, repository, {
      headers: { accept: MANIFEST_TYPES },
      actions: 'pull',
    });
    if (answer.status !== 200) throw this.failure(answer, `checking the manifest ${reference}`);
    const digest = answer.headers['docker-content-digest'];
    if (typeof digest === 'string' && /^sha256:[a-f0-9]{64}$/.test(digest)) return digest;
    if (/^sha256:[a-f0-9]{64}$/.test(reference)) return reference;
    throw new RegistryError('the registry answered no Docker-Content-Digest for the manifest');
  }

  async hasBlob(repository: string, digest: string): Promise<boolean> {
    const answer = await this.call('HEAD', `/v2/${repository}/blobs/${digest}`, repository);
    if (answer.status === 200) return true;
    if (answer.status === 404) return false;
    throw this.failure(answer, `checking blob ${digest}`);
  }

  /**
   * A blob's bytes, streamed (a redirect to the registry's storage, S3 or GCS, is followed once,
   * without Kiln's credentials); a `RegistryError` with the status when it has none (404).
   */
  async openBlob(repository: string, digest: string): Promise<Readable> {
    let answer = await this.call('GET', `/v2/${repository}/blobs/${digest}`, repository, {
      actions: 'pull',
      stream: true,
    });
    const location = answer.headers.location;
    if ([301, 302, 303, 307, 308].includes(answer.status) && typeof location === 'string') {
      const target = new URL(location, this.baseUrl);
      answer = await request('GET', target, {}, undefined, this.options, true);
    }
    if (answer.status !== 200 || !answer.stream) {
      throw this.failure(answer, `fetching blob ${digest}`);
    }
    return answer.stream;
  }

  /** Uploads a blob (a file, or bytes in memory) in one PUT; the registry checks the digest. */
  async pushBlob(
    repository: string,
    digest: string,
    source: string | Buffer,
    size: number,
  ): Promise<void> {
    const started = await this.call('POST', `/v2/${repository}/blobs/uploads/`, repository);
    if (started.status !== 202 || typeof started.headers.location !== 'string') {
      throw this.failure(started, `starting the upload of ${digest}`);
    }
    const location = new URL(started.headers.location, this.baseUrl);
    location.searchParams.set('digest', digest);
    const done = await this.call('PUT', location.toString(), repository, {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: () =>
        Buffer.isBuffer(source)
          ? Readable.from([source])
          : createReadStream(source, { highWaterMark: 1024 * 1024 }),
    });
    if (done.status !== 201) throw this.failure(done, `uploading blob ${digest}`);
  }

  /** Uploads a manifest under `reference`; resolves with the digest the registry gave it. */
  async putManifest(
    repository: string,
    reference: string,
    manifest: Buffer,
    mediaType: string,
  ): Promise<string> {
    const answer = await this.call('PUT', `/v2/${repository}/manifests/${reference}`, repository, {
      headers: { 'content-type': mediaType, 'content-length': String(manifest.length) },
      body: () => Readable.from([manifest]),
    });
    if (answer.status !== 201) throw this.failure(answer, 'uploading the manifest');
    const digest = answer.headers['docker-content-digest'];
    return typeof digest === 'string' ? digest : '';
  }

  private failure(answer: Answer, doing: string): RegistryError {
    let detail = answer.body.toString('utf8').slice(0, 500).trim();
    try {
      const parsed = JSON.parse(detail) as { errors?: { code?: string; message?: string }[] };
      if (parsed.errors?.length) {
        detail = parsed.errors.map((error) => `${error.code}: ${error.message}`).join('; ');
      }
    } catch {
      // not JSON: keep the text
    }
    return new RegistryError(
      `the registry answered ${answer.status} ${doing}${detail ? ` (${detail})` : ''}`,
      answer.status,
    );
  }

  /**
   * One request; on a 401 it authenticates as the challenge says and tries once more (a body is
   * made again by its factory, so a streamed body can be sent twice).
   */
  private async call(
    method: string,
    path: string,
    repository: string,
    options: {
      headers?: Record<string, string>;
      body?: () => Readable;
      actions?: string;
      stream?: boolean;
    } = {},
  ): Promise<Answer> {
    const url = new URL(path, this.baseUrl);
    const send = () =>
      request(
        method,
        url,
        {
          ...options.headers,
          ...(this.authorization ? { authorization: this.authorization } : {}),
        },
        options.body?.(),
        this.options,
        options.stream,
      );
    let answer = await send();
    if (answer.status === 401) {
      const challenge = answer.headers['www-authenticate'];
      if (
        typeof challenge === 'string' &&
        (await this.authenticate(challenge, repository, options.actions ?? 'pull,push'))
      ) {
        answer = await send();
      }
    }
    return answer;
  }

  private async authenticate(
    challenge: string,
    repository: string,
    actions: string,
  ): Promise<boolean> {
    const basic = this.auth
      ? `Basic ${Buffer.from(`${this.auth.username}:${this.auth.password}`).toString('base64')}`
      : undefined;
    if (/^basic/i.test(challenge)) {
      if (!basic || this.authorization === basic) return false;
      this.authorization = basic;
      return true;
    }
    if (!/^bearer/i.test(challenge)) return false;
    const params = Object.fromEntries(
      [...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((match) => [
        match[1].toLowerCase(),
        match[2],
      ]),
    );
    if (!params.realm) return false;
    const realm = new URL(params.realm);
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', params.scope ?? `repository:${repository}:${actions}`);
    const answer = await request(
      'GET',
      realm,
      basic ? { authorization: basic } : {},
      undefined,
      this.options,
    );
    if (answer.status !== 200) throw this.failure(answer, 'to the token request');
    const token = JSON.parse(answer.body.toString('utf8')) as {
      token?: string;
      access_token?: string;
    };
    const value = token.token ?? token.access_token;
    if (!value) return false;
    this.authorization = `Bearer ${value}`;
    return true;
  }
}

/** A client of the platform registry, with Kiln's own credentials for it. */
export function platformRegistryClient(
  registry: PlatformRegistry,
  options: RegistryClientOptions = {},
): RegistryClient {
  return new RegistryClient(
    registry.baseUrl,
    registry.username !== undefined
      ? { username: registry.username, password: registry.password ?? '' }
      : undefined,
    options,
  );
}

function request(
  method: string,
  url: URL,
  headers: Record<string, string>,
  body?: Readable,
  options: RegistryClientOptions = {},
  streamed = false,
): Promise<Answer> {
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise<Answer>((resolve, reject) => {
    const req = transport.request(
      url,
      { method, headers, lookup: options.lookup, signal: options.signal },
      (res) => {
        if (streamed && res.statusCode === 200) {
          req.setTimeout(0);
          resolve({ status: 200, headers: res.headers, body: Buffer.alloc(0), stream: res });
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= MAX_ANSWER_BYTES) chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
      },
    );
    req.on('error', (error) => reject(new RegistryError(`registry unreachable: ${error.message}`)));
    if (options.timeoutMs) {
      req.setTimeout(options.timeoutMs, () =>
        req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)),
      );
    }
    if (body) {
      body.on('error', (error) => req.destroy(error));
      body.pipe(req);
    } else {
      req.end();
    }
  });
}
