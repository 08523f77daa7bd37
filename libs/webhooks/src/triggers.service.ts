import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { IsNull, Repository } from 'typeorm';
import {
  FieldReader,
  JsonObject,
  KilnException,
  hashSecret,
  newId,
  newSecret,
  sameSecret,
  SecretBox,
  SecretKeys,
  sealedContext,
} from '@kiln/common';
import { KILN_CONFIG } from '@kiln/config';
import { Code, CodesService } from '@kiln/codes';
import { ProjectLimits, checkQuota } from '@kiln/projects';
import { TaskLimits, TasksService, parseTaskSpec, readCluster } from '@kiln/tasks';
import { CodeTrigger, HmacEncoding } from './code-trigger.entity';
import { hmacMatches } from './trigger-signature';

export interface TriggerSpec {
  hmacHeader: string | null;
  hmacSecret: string | null;
  hmacPrefix: string;
  hmacEncoding: HmacEncoding;
  /** Cluster of the tasks the trigger queues. */
  cluster: string;
}

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$/;

export function parseTriggerSpec(body: JsonObject): TriggerSpec {
  const read = new FieldReader(body);
  const hmacHeader = read.string('hmac_header', 100) || null;
  const hmacSecret = read.string('hmac_secret', 1024) || null;
  const hmacPrefix = read.string('hmac_prefix', 100) ?? '';
  const encoding = read.string('hmac_encoding') ?? 'hex';
  if (hmacHeader !== null && !HEADER_NAME.test(hmacHeader)) {
    throw KilnException.badRequest('hmac_header must be an HTTP header name');
  }
  if ((hmacHeader === null) !== (hmacSecret === null)) {
    throw KilnException.badRequest('hmac_header and hmac_secret go together: give both or neither');
  }
  if (encoding !== 'hex' && encoding !== 'base64') {
    throw KilnException.badRequest('hmac_encoding must be "hex" or "base64"');
  }
  return { hmacHeader, hmacSecret, hmacPrefix, hmacEncoding: encoding, cluster: readCluster(read) };
}

export interface IncomingRequest {
  /** The secret from `?secret=` or the `X-Kiln-Trigger-Secret` header. */
  secret: string | undefined;
  header: (name: string) => string | undefined;
  body: Buffer;
}

/**
 * Per-code trigger URLs: each queues tasks of its own code only, authenticated by a secret of its
 * own (stored as a hash, shown once) and, optionally, an HMAC of the body in a header.
 */
@Injectable()
export class TriggersService {
  private readonly box: SecretBox;

  constructor(
    @Inject(KILN_CONFIG) keys: SecretKeys,
    @InjectRepository(CodeTrigger) private readonly triggers: Repository<CodeTrigger>,
    private readonly codes: CodesService,
    private readonly tasks: TasksService,
    private readonly limits: ProjectLimits,
  ) {
    this.box = SecretBox.from(keys);
  }

  /**
   * A new trigger URL of the code: its cluster must be granted (403), and the code's live triggers
   * stay within the project's quota per code (429).
   */
  async create(
    projectId: string,
    codeId: string,
    spec: TriggerSpec,
  ): Promise<{ trigger: CodeTrigger; code: Code; secret: string }> {
    const code = await this.codes.get(projectId, codeId);
    await this.limits.checkClusters(projectId, [spec.cluster]);
    const live = await this.triggers.countBy({ projectId, codeId, revokedAt: IsNull() });
    checkQuota('triggersPerCode', await this.limits.quota(projectId, 'triggersPerCode'), live);
    const secret = newSecret();
    const id = newId();
    const trigger = await this.triggers.save(
      this.triggers.create({
        id,
        projectId,
        codeId,
        secretHash: hashSecret(secret),
        ...spec,
        // The HMAC key must stay readable to check signatures: sealed, not hashed.
        hmacSecret:
          spec.hmacSecret === null
            ? null
            : this.box.store(spec.hmacSecret, sealedContext.triggerHmacSecret(projectId, id)),
        createdAt: new Date(),
        revokedAt: null,
      }),
    );
    return { trigger, code, secret };
  }

  async list(projectId: string, codeId: string): Promise<{ code: Code; triggers: CodeTrigger[] }> {
    const code = await this.codes.get(projectId, codeId);
    const triggers = await this.triggers.find({
      where: { projectId, codeId, revokedAt: IsNull() },
      order: { createdAt: 'ASC', id: 'ASC' },
    });
    return { code, triggers };
  }

  async revoke(projectId: string, codeId: string, triggerId: string): Promise<void> {
    const result = await this.triggers.update(
      { projectId, codeId, id: triggerId, revokedAt: IsNull() },
      { revokedAt: new Date() },
    );
    if (!result.affected) throw KilnException.notFound('Trigger not found');
  }

  /**
   * Queues a task of the trigger's code with the raw body as payload. Every failure of
   * authentication — unknown or revoked trigger, wrong secret, wrong or missing HMAC — is the same
   * 401, and queues nothing.
   */
  async fire(
    projectId: string,
    triggerId: string,
    request: IncomingRequest,
    limits: TaskLimits,
  ): Promise<string> {
    const trigger = await this.triggers.findOneBy({
      projectId,
      id: triggerId,
      revokedAt: IsNull(),
    });
    if (
      !trigger ||
      !request.secret ||
      !sameSecret(hashSecret(request.secret), trigger.secretHash)
    ) {
      throw KilnException.unauthorized('Invalid or revoked trigger secret');
    }
    if (
      trigger.hmacHeader !== null &&
      !hmacMatches(
        request.header(trigger.hmacHeader),
        this.box.read(
          trigger.hmacSecret ?? '',
          sealedContext.triggerHmacSecret(projectId, trigger.id),
        ),
        request.body,
        trigger.hmacPrefix,
        trigger.hmacEncoding,
      )
    ) {
      throw KilnException.unauthorized(
        `Signature in ${trigger.hmacHeader} does not match the body`,
      );
    }
    const code = await this.codes.get(projectId, trigger.codeId);
    const spec = parseTaskSpec(
      { code_name: code.name, payload: request.body.toString('utf8'), cluster: trigger.cluster },
      limits,
    );
    const [id] = await this.tasks.create(projectId, [spec], 'trigger');
    return id;
  }
}
