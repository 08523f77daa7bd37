import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { SecretBox, sealedContext } from '@kiln/common';
import { loadConfig } from '@kiln/config';
import { rowsOf } from './results';

/** A sealed column: its table's key, and what each value is bound to (sealedContext). */
interface SealedColumn {
  table: string;
  column: string;
  /** The primary key's columns, in index order (rows are read in batches along it). */
  keys: string[];
  /** The columns `context` needs besides the key. */
  extra?: string[];
  /** jsonb holding an object (plain) or a JSON string (sealed), as codes' env_vars. */
  json?: boolean;
  context: (row: Record<string, string>) => string;
}

const COLUMNS: SealedColumn[] = [
  {
    table: 'registry_credentials',
    column: 'secret',
    keys: ['project_id', 'server_address'],
    context: (r) => sealedContext.registryCredential(r.project_id, r.server_address),
  },
  {
    table: 'webhooks',
    column: 'secret',
    keys: ['id'],
    extra: ['project_id'],
    context: (r) => sealedContext.webhookSecret(r.project_id, r.id),
  },
  {
    table: 'webhooks',
    column: 'previous_secret',
    keys: ['id'],
    extra: ['project_id'],
    context: (r) => sealedContext.webhookPreviousSecret(r.project_id, r.id),
  },
  {
    table: 'log_drains',
    column: 'secret',
    keys: ['id'],
    extra: ['project_id'],
    context: (r) => sealedContext.logDrainSecret(r.project_id, r.id),
  },
  {
    table: 'project_webhook_secrets',
    column: 'secret',
    keys: ['project_id'],
    context: (r) => sealedContext.projectWebhookSecret(r.project_id),
  },
  {
    table: 'code_triggers',
    column: 'hmac_secret',
    keys: ['id'],
    extra: ['project_id'],
    context: (r) => sealedContext.triggerHmacSecret(r.project_id, r.id),
  },
  {
    table: 'codes',
    column: 'env_vars',
    keys: ['id'],
    extra: ['project_id'],
    json: true,
    context: (r) => sealedContext.codeEnvVars(r.project_id, r.id),
  },
  {
    table: 'code_revisions',
    column: 'env_vars',
    keys: ['id'],
    extra: ['project_id', 'code_id'],
    json: true,
    context: (r) => sealedContext.codeEnvVars(r.project_id, r.code_id),
  },
];

/**
 * Seals every secret at rest under the current key (`KILN_CREDENTIALS_KEY`): values sealed under
 * a former key (`KILN_CREDENTIALS_OLD_KEYS`) and legacy plain ones. Reads `batch` rows at a time
 * along the primary key and writes each value only if it is still the one read, so it runs beside
 * live processes, and again after an interruption (what is done is not redone). Returns how many
 * values it rewrote per `table.column`.
 */
export async function reseal(
  db: DataSource,
  box: SecretBox,
  batch = 500,
): Promise<Record<string, number>> {
  if (!box.sealing) {
    throw new Error('KILN_CREDENTIALS_KEY is not set: there is no key to seal with');
  }
  const counts: Record<string, number> = {};
  for (const spec of COLUMNS) {
    counts[`${spec.table}.${spec.column}`] = await resealColumn(db, box, spec, batch);
  }
  return counts;
}

async function resealColumn(
  db: DataSource,
  box: SecretBox,
  spec: SealedColumn,
  batch: number,
): Promise<number> {
  const keys = spec.keys.join(', ');
  const params = spec.keys.map((_, i) => `$${i + 1}`).join(', ');
  const columns = [...spec.keys, ...(spec.extra ?? [])].join(', ');
  let after: string[] | undefined;
  let rewritten = 0;
  for (;;) {
    const rows = await db.query<Record<string, unknown>[]>(
      `SELECT ${columns}, ${spec.column} AS value FROM ${spec.table}
        WHERE ${spec.column} IS NOT NULL ${after ? `AND (${keys}) > (${params})` : ''}
        ORDER BY ${keys} LIMIT ${batch}`,
      after ?? [],
    );
    for (const row of rows) {
      const context = spec.context(row as Record<string, string>);
      const value = row.value;
      let sealed: string | undefined;
      if (typeof value === 'string') {
        if (box.needsReseal(value)) sealed = box.seal(box.read(value, context), context);
      } else if (spec.json && value && Object.keys(value).length > 0) {
        sealed = box.seal(JSON.stringify(value), context);
      }
      if (sealed === undefined) continue;
      const stored = spec.json ? JSON.stringify(sealed) : sealed;
      const was = spec.json ? JSON.stringify(value) : value;
      const cast = spec.json ? '::jsonb' : '';
      const n = spec.keys.length;
      const updated = rowsOf<{ ok: number }>(
        await db.query(
          `UPDATE ${spec.table} SET ${spec.column} = $${n + 1}${cast}
            WHERE (${keys}) = (${params}) AND ${spec.column} = $${n + 2}${cast}
            RETURNING 1 AS ok`,
          [...spec.keys.map((key) => row[key]), stored, was],
        ),
      );
      rewritten += updated.length;
    }
    if (rows.length < batch) return rewritten;
    const last = rows[rows.length - 1];
    after = spec.keys.map((key) => last[key] as string);
  }
}

if (require.main === module) {
  const config = loadConfig();
  const db = new DataSource({ type: 'postgres', url: config.databaseUrl });
  db.initialize()
    .then(() => reseal(db, SecretBox.from(config)))
    .then((counts) => {
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      const done = Object.entries(counts)
        .filter(([, n]) => n > 0)
        .map(([column, n]) => `${column} ${n}`);
      console.log(
        total
          ? `resealed ${total} secrets under key ${SecretBox.from(config).currentKid}: ${done.join(', ')}`
          : `every secret is sealed under key ${SecretBox.from(config).currentKid}`,
      );
    })
    .catch((error: unknown) => {
      console.error('reseal failed:', error instanceof Error ? error.message : error);
      process.exitCode = 1;
    })
    .finally(() => void db.destroy());
}
