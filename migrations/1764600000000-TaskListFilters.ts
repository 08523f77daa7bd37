import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `GET …/tasks` filtered by code name, label or cluster (issue 21): an index for each that holds
 * the status and the list's order after it, so that each status's branch of the list (see
 * TaskStore.list) walks its index in order and stops after one page's worth, whatever the
 * project's backlog. Labels and clusters are indexed only where they differ from the default
 * (`''`, `default`), which most tasks keep: those tasks cost these indexes nothing, and a filter
 * on the default matches most of a project's tasks, found quickly by the status index.
 *
 * And the log drains' `tasks_project_end_idx` (see the LogDrains migration).
 *
 * Built CONCURRENTLY (outside a transaction), so that `tasks` takes writes meanwhile; a build that
 * failed half way leaves an invalid index, dropped first when the migration runs again.
 */
const INDEXES: [name: string, definition: string][] = [
  [
    'tasks_project_code_status_idx',
    `ON tasks (project_id, code_name, status, created_at DESC, id DESC)`,
  ],
  [
    'tasks_project_label_status_idx',
    `ON tasks (project_id, label, status, created_at DESC, id DESC) WHERE label <> ''`,
  ],
  [
    'tasks_project_cluster_status_idx',
    `ON tasks (project_id, cluster, status, created_at DESC, id DESC) WHERE cluster <> 'default'`,
  ],
  // The log drains' shipper: a project's tasks that ended within a drain's buffer (see the
  // LogDrains migration, which leaves it to this one to build it without holding writes).
  ['tasks_project_end_idx', `ON tasks (project_id, end_time) WHERE end_time IS NOT NULL`],
];

export class TaskListFilters1764600000000 implements MigrationInterface {
  name = 'TaskListFilters1764600000000';
  transaction = false;

  public async up(db: QueryRunner): Promise<void> {
    for (const [name, definition] of INDEXES) {
      await db.query(`DROP INDEX CONCURRENTLY IF EXISTS ${name}`);
      await db.query(`CREATE INDEX CONCURRENTLY ${name} ${definition}`);
    }
  }

  public async down(db: QueryRunner): Promise<void> {
    // Not CONCURRENTLY: TypeORM reverts inside a transaction whatever `transaction` says.
    for (const [name] of INDEXES) await db.query(`DROP INDEX IF EXISTS ${name}`);
  }
}
