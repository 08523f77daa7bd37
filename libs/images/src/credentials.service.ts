import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { FieldReader, isPlainObject, KilnException, SecretBox, sealedContext } from '@kiln/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { normalizeServerAddress } from './image-names';
import { RegistryCredential } from './registry-credential.entity';

/** What the Docker engine takes to pull from a registry that wants a login. */
export interface PullAuth {
  username: string;
  password: string;
  serveraddress: string;
}

export interface CredentialSpec {
  serverAddress: string;
  username: string;
  password: string;
  email: string;
}

/** Docker's default, for a login that names no registry. */
const DOCKER_HUB = 'docker.io';

/**
 * Parses `POST …/credentials`: IronWorker's `{"auth": base64(JSON {email, username, password,
 * serveraddress})}` (what `iron docker login` sends), or that JSON object itself.
 */
export function parseCredentials(body: unknown): CredentialSpec {
  if (!isPlainObject(body)) throw KilnException.badRequest('body must be a JSON object');
  let fields = body;
  if (typeof body.auth === 'string') {
    let decoded: unknown;
    try {
      decoded = JSON.parse(Buffer.from(body.auth, 'base64').toString('utf8'));
    } catch {
      throw KilnException.badRequest(
        'auth must be base64 of a JSON object {username, password, serveraddress, email}',
      );
    }
    if (!isPlainObject(decoded)) {
      throw KilnException.badRequest(
        'auth must be base64 of a JSON object {username, password, serveraddress, email}',
      );
    }
    fields = decoded;
  }
  const read = new FieldReader(fields);
  const serverAddress =
    normalizeServerAddress(read.string('serveraddress', 1024) ?? '') || DOCKER_HUB;
  if (!/^[a-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9a-f:]+\](:[0-9]{1,5})?$/.test(serverAddress)) {
    throw KilnException.badRequest(`serveraddress "${serverAddress}" is not a registry host`);
  }
  return {
    serverAddress,
    username: read.requiredString('username', 1024),
    password: read.requiredString('password', 8192),
    email: read.string('email', 1024) ?? '',
  };
}

/** Registry logins per project, sealed at rest with KILN_CREDENTIALS_KEY (AES-256-GCM). */
@Injectable()
export class CredentialsService {
  private readonly box: SecretBox;

  constructor(
    @Inject(KILN_CONFIG) config: KilnConfig,
    @InjectRepository(RegistryCredential) private readonly rows: Repository<RegistryCredential>,
  ) {
    this.box = SecretBox.from(config);
  }

  /** Stores a login; a second one for the same registry replaces the first. */
  async store(projectId: string, spec: CredentialSpec): Promise<void> {
    if (!this.box.sealing) {
      throw KilnException.unavailable(
        'Registry credentials are off on this server: KILN_CREDENTIALS_KEY is not set',
      );
    }
    const secret = this.box.seal(
      JSON.stringify({ password: spec.password, email: spec.email }),
      sealedContext.registryCredential(projectId, spec.serverAddress),
    );
    await this.rows.query(
      `INSERT INTO registry_credentials (project_id, server_address, username, secret)
       VALUES ($1, $2, $3, $4)
       ON CONFLICT (project_id, server_address)
       DO UPDATE SET username = EXCLUDED.username, secret = EXCLUDED.secret, updated_at = now()`,
      [projectId, spec.serverAddress, spec.username, secret],
    );
  }

  async list(projectId: string): Promise<RegistryCredential[]> {
    return this.rows.find({ where: { projectId }, order: { serverAddress: 'ASC' } });
  }

  async delete(projectId: string, serverAddress: string): Promise<void> {
    const result = await this.rows.delete({
      projectId,
      serverAddress: normalizeServerAddress(serverAddress),
    });
    if (!result.affected) throw KilnException.notFound('No credentials for this serveraddress');
  }

  /** The project's login to `host`, if it stored one. */
  async authFor(projectId: string, host: string): Promise<PullAuth | null> {
    const row = await this.rows.findOneBy({ projectId, serverAddress: host });
    if (!row) return null;
    if (!this.box.sealing) {
      throw new Error(
        'KILN_CREDENTIALS_KEY is not set: the stored registry credentials cannot be read',
      );
    }
    let password: string;
    try {
      ({ password } = JSON.parse(
        this.box.open(row.secret, sealedContext.registryCredential(projectId, host)),
      ) as {
        password: string;
      });
    } catch (error) {
      throw new Error(
        `the stored credentials for ${host} do not decrypt: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    return { username: row.username, password, serveraddress: host };
  }
}
