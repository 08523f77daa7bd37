import { DataSource } from 'typeorm';
import { newId } from '@kiln/common';
import { DueDrain, LogDrainStore } from '@kiln/webhooks';
import { OwnDatabase } from '../support/database';

/**
 * The log drains' store against Postgres, in-process: how a drain's `swept_until` moves (up to
 * the oldest ended task it is not done with, never within the lag of the clock, never back, not
 * held by tasks out of the buffer, another project's or another code's), and that a pass reads
 * the running tasks and those ended since the mark, never the done ones before it. A database of
 * this file's own.
 */
describe('LogDrainStore against Postgres', () => {
  const database = new OwnDatabase('kiln_int_drains');
  let db: DataSource;
  let store: LogDrainStore;
  const HOUR = 3600;
  const LAG = 60;
  const projects = [newId(), newId()];

  beforeAll(async () => {
    await database.create();
    db = new DataSource({ type: 'postgres', url: database.url, extra: { max: 3 } });
    await db.initialize();
    store = new LogDrainStore(db);
    for (const projectId of projects) {
      await db.query(`INSERT INTO projects (id, name) VALUES ($1, 'int-drains')`, [projectId]);
      for (const name of ['a', 'b']) {
        const codeId = newId();
        const revisionId = newId();
        await db.query(
          `INSERT INTO codes (id, project_id, name, rev, latest_revision_id, image)
           VALUES ($1, $2, $3, 1, $4, 'busybox')`,
          [codeId, projectId, name, revisionId],
        );
        await db.query(
          `INSERT INTO code_revisions (id, code_id, project_id, rev, image)
           VALUES ($1, $2, $3, 1, 'busybox')`,
          [revisionId, codeId, projectId],
        );
      }
    }
  });

  afterAll(async () => {
    await db?.destroy();
    await database.drop();
  });

  afterEach(async () => {
    await db.query(`DELETE FROM log_drains`);
    await db.query(`DELETE FROM tasks`);
  });

  /** A task of `code` in `projectId`: running, or ended `endedSecondsAgo` ago. */
  async function task(
    projectId: string,
    endedSecondsAgo: number | 'running',
    code = 'a',
  ): Promise<string> {
    const id = newId();
    const running = endedSecondsAgo === 'running';
    await db.query(
      `INSERT INTO tasks (id, project_id, code_id, code_revision_id, code_name, code_rev, status,
                          priority, payload, timeout, cluster, run_at, created_at, updated_at,
                          start_time, end_time)
       SELECT $1, $2, c.id, c.latest_revision_id, c.name, 1, $4, 0, '{}', 60, 'default',
              now(), now(), now(), now() - interval '3 hours',
              CASE WHEN $5::int IS NULL THEN NULL ELSE now() - $5::int * interval '1 second' END
         FROM codes c WHERE c.project_id = $2 AND c.name = $3`,
      [id, projectId, code, running ? 'running' : 'complete', running ? null : endedSecondsAgo],
    );
    return id;
  }

  /** A drain of `projectId` (of `code` alone when given) made `createdSecondsAgo` ago. */
  async function drain(projectId: string, createdSecondsAgo: number, code?: string) {
    const id = newId();
    await db.query(
      `INSERT INTO log_drains (id, project_id, url, code_name, created_at, updated_at)
       VALUES ($1, $2, 'syslog+tcp://127.0.0.1:9', $3, now() - $4 * interval '1 second', now())`,
      [id, projectId, code ?? null, createdSecondsAgo],
    );
    return id;
  }

  async function due(id: string): Promise<DueDrain> {
    const found = (await store.due(new Date())).find((d) => d.id === id);
    if (!found) throw new Error(`drain ${id} not due`);
    return found;
  }

  /** The drain's mark, in seconds before the database's clock. */
  async function markAge(id: string): Promise<number> {
    const [row] = await db.query<{ age: number }[]>(
      `SELECT extract(epoch FROM now() - swept_until)::float8 AS age FROM log_drains WHERE id = $1`,
      [id],
    );
    return row.age;
  }

  const done = (drainId: string, taskId: string) =>
    store.record(drainId, [{ taskId, seq: 1, done: true }], { delivered: 1, dropped: 0 }, null);
  const endedAfter = () => new Date(Date.now() - 2 * HOUR * 1000);
  const idsOf = async (drainId: string) =>
    (await store.tasks(await due(drainId), endedAfter(), 200)).map((t) => t.id).sort();

  it('moves up to the oldest ended task not done, then to the lag, never back', async () => {
    const [p] = projects;
    const id = await drain(p, 3 * HOUR);
    const oldDone = await task(p, 30 * 60);
    const oldUndone = await task(p, 20 * 60);
    const recentDone = await task(p, 5 * 60);
    const fresh = await task(p, 10);
    const running = await task(p, 'running');
    await done(id, oldDone);
    await done(id, recentDone);
    expect(await markAge(id)).toBeNull();
    expect(await idsOf(id)).toEqual([oldUndone, fresh, running].sort());

    await store.sweep(await due(id), endedAfter(), LAG);
    expect(await markAge(id)).toBeCloseTo(20 * 60, -1);
    expect(await idsOf(id)).toEqual([oldUndone, fresh, running].sort());

    // Done with the old one: the mark moves on, but stays LAG behind the clock though `fresh`
    // ended 10 s ago and is not done.
    await done(id, oldUndone);
    await store.sweep(await due(id), endedAfter(), LAG);
    const age = await markAge(id);
    expect(age).toBeGreaterThanOrEqual(LAG);
    expect(age).toBeLessThan(LAG + 30);
    // The pass no longer reaches back to what ended before the mark, done or not.
    const before = await task(p, 10 * 60);
    expect(await idsOf(id)).toEqual([fresh, running].sort());
    await store.sweep(await due(id), endedAfter(), LAG);
    expect(await markAge(id)).toBeLessThan(LAG + 30);
    expect(await idsOf(id)).not.toContain(before);
  });

  it('is held by no task out of the buffer, of another project, or of another code', async () => {
    const [p, other] = projects;
    const all = await drain(p, 4 * HOUR);
    const onlyB = await drain(p, 4 * HOUR, 'b');
    await task(p, 3 * HOUR); // ended before endedAfter: out of every buffer
    await task(other, 30 * 60); // another project's, not done
    const ofA = await task(p, 15 * 60); // code a, not done
    await store.sweep(await due(all), endedAfter(), LAG);
    await store.sweep(await due(onlyB), endedAfter(), LAG);
    expect(await markAge(all)).toBeCloseTo(15 * 60, -1);
    expect(await markAge(onlyB)).toBeLessThan(LAG + 30);
    expect(await idsOf(onlyB)).toEqual([]);
    expect(await idsOf(all)).toEqual([ofA]);
  });

  it('starts from when the drain was made', async () => {
    const [p] = projects;
    await task(p, 30 * 60);
    const id = await drain(p, 10 * 60);
    const after = await task(p, 5 * 60);
    expect(await idsOf(id)).toEqual([after]);
    await store.sweep(await due(id), endedAfter(), LAG);
    expect(await markAge(id)).toBeCloseTo(5 * 60, -1);
  });
});
