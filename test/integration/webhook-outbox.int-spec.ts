import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { newId, SecretBox, SecretKeys, sealedContext } from '@kiln/common';
import {
  AttemptOutcome,
  ClaimedDelivery,
  CircuitSettings,
  FairLimits,
  InFlight,
  WebhookOutbox,
} from '@kiln/webhooks';
import { OwnDatabase } from '../support/database';

/**
 * The webhook outbox against real Postgres, in-process, no HTTP: how a claim shares the due
 * deliveries (fair across projects and endpoints, per-task order, one probe for a parked
 * endpoint, never one row to two processes), how recorded outcomes move an endpoint's circuit,
 * the backlog cap and what disabling an endpoint writes. A database of this file's own; a second
 * connection pool plays a second scheduler replica.
 */
describe('WebhookOutbox against Postgres', () => {
  const database = new OwnDatabase('kiln_int_outbox');
  let db: DataSource;
  let rivalDb: DataSource;
  let outbox: WebhookOutbox;
  /** The outbox of another scheduler process (a pool of its own). */
  let rival: WebhookOutbox;

  /** Ten seconds, then 20 and 30: far enough that no step comes due while a test looks. */
  const SETTINGS: CircuitSettings = { failures: 5, schedule: [10, 20, 30] };
  const LIMITS: FairLimits = { free: 64, perProject: 16, perEndpoint: 8 };
  const LEASE_SECONDS = 30;
  const IDLE: InFlight = { projects: new Map(), endpoints: new Map() };
  const KEYS: SecretKeys = { credentialsKey: randomBytes(32), credentialsOldKeys: [] };

  beforeAll(async () => {
    await database.create();
    db = new DataSource({ type: 'postgres', url: database.url, extra: { max: 5 } });
    rivalDb = new DataSource({ type: 'postgres', url: database.url, extra: { max: 5 } });
    await db.initialize();
    await rivalDb.initialize();
    outbox = new WebhookOutbox(db, KEYS);
    rival = new WebhookOutbox(rivalDb, KEYS);
  });

  afterAll(async () => {
    await db?.destroy();
    await rivalDb?.destroy();
    await database.drop();
  });

  // A claim looks at every project's due deliveries, so what one test leaves pending would be
  // offered to the next one's claims: each test starts from an empty outbox.
  afterEach(async () => {
    await db.query(`DELETE FROM webhook_deliveries`);
    await db.query(`DELETE FROM webhook_endpoints`);
  });

  async function newProject(): Promise<string> {
    const id = newId();
    await db.query(`INSERT INTO projects (id, name) VALUES ($1, 'int-outbox')`, [id]);
    return id;
  }

  async function subscribe(
    projectId: string,
    { enabled = true, events = ['task.complete'] }: { enabled?: boolean; events?: string[] } = {},
  ): Promise<string> {
    const id = newId();
    await db.query(
      `INSERT INTO webhooks (id, project_id, url, events, enabled, secret, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, 'whsec_aW50LW91dGJveA==', now(), now())`,
      [id, projectId, `http://127.0.0.1:9/${id}`, events, enabled],
    );
    return id;
  }

  /**
   * Pending deliveries, due now, one per entry of `taskIds` (a fresh task each by default), to
   * a subscription or to a task's own URL; their ids in the order they were made (seq).
   */
  async function pending(
    projectId: string,
    to: { webhookId: string } | { url: string },
    taskIds: string[] | number,
  ): Promise<string[]> {
    const tasks = typeof taskIds === 'number' ? Array.from({ length: taskIds }, newId) : taskIds;
    const rows = await db.query<{ id: string; seq: string }[]>(
      `INSERT INTO webhook_deliveries
              (id, seq, project_id, webhook_id, url, message_id, event_type, task_id, body, state,
               created_at, updated_at, next_attempt_at)
       SELECT kiln_delivery_id(s.seq), s.seq, $1, $2::bpchar, $3::text, 'msg_int_' || s.seq,
              'task.complete', s.task_id, '{}', 'pending', now(), now(), now()
         FROM (SELECT nextval('webhook_delivery_seq') AS seq, t.task_id
                 FROM unnest($4::bpchar[]) WITH ORDINALITY AS t(task_id, n) ORDER BY t.n) s
       RETURNING id, seq`,
      [projectId, 'webhookId' in to ? to.webhookId : null, 'url' in to ? to.url : null, tasks],
    );
    return rows.sort((a, b) => Number(a.seq) - Number(b.seq)).map((row) => row.id);
  }

  const claim = (limits: Partial<FairLimits> = {}, inFlight: InFlight = IDLE, by = outbox) =>
    by.claim({ ...LIMITS, ...limits }, inFlight, LEASE_SECONDS);

  const inFlight = (
    projects: Record<string, number> = {},
    endpoints: Record<string, number> = {},
  ): InFlight => ({
    projects: new Map(Object.entries(projects)),
    endpoints: new Map(Object.entries(endpoints)),
  });

  /** How many of `claimed` there are per value of `key`. */
  function countBy(claimed: ClaimedDelivery[], key: (d: ClaimedDelivery) => string) {
    const counts: Record<string, number> = {};
    for (const delivery of claimed) counts[key(delivery)] = (counts[key(delivery)] ?? 0) + 1;
    return counts;
  }

  const failure = (over: Partial<AttemptOutcome> = {}): AttemptOutcome => ({
    state: 'pending',
    statusCode: 500,
    error: 'Endpoint answered 500',
    durationMs: 3,
    retryInSeconds: 0,
    ...over,
  });
  const refused = failure({
    statusCode: null,
    error: 'connect ECONNREFUSED 127.0.0.1:9',
    unreachable: true,
  });
  const delivered: AttemptOutcome = {
    state: 'delivered',
    statusCode: 200,
    error: null,
    durationMs: 3,
  };

  const record = (deliveries: ClaimedDelivery[], outcome: AttemptOutcome) =>
    outbox.record(
      deliveries.map((delivery) => ({ delivery, outcome })),
      SETTINGS,
    );

  async function endpoint(key: string) {
    const [row] = await db.query<any[]>(
      `SELECT circuit, failures, probes, opened_at, probe_at, last_error, dropped::int,
              extract(epoch FROM probe_at - now())::float8 AS probe_in
         FROM webhook_endpoints WHERE key = $1`,
      [key],
    );
    return row as
      | {
          circuit: string;
          failures: number;
          probes: number;
          opened_at: Date | null;
          probe_at: Date | null;
          last_error: string | null;
          dropped: number;
          probe_in: number | null;
        }
      | undefined;
  }

  /** Time passes until the endpoint's next probe is due. */
  const probeDue = (key: string) =>
    db.query(`UPDATE webhook_endpoints SET probe_at = now() - interval '1 second' WHERE key = $1`, [
      key,
    ]);

  async function deliveryRows(ids: string[]) {
    return db.query<any[]>(
      `SELECT id, state, attempt, error, next_attempt_at FROM webhook_deliveries
        WHERE id = ANY ($1::bpchar[]) ORDER BY seq`,
      [ids],
    );
  }

  describe('claim', () => {
    it("shares the free slots between projects first: B's few are not stuck behind A's backlog, A's share is spread over its endpoints", async () => {
      const a = await newProject();
      const b = await newProject();
      const aHooks = [await subscribe(a), await subscribe(a), await subscribe(a)];
      for (const hook of aHooks) await pending(a, { webhookId: hook }, 50);
      const bHook = await subscribe(b);
      const bIds = await pending(b, { webhookId: bHook }, 5);

      const claimed = await claim({ free: 10 });
      expect(countBy(claimed, (d) => d.projectId)).toEqual({ [a]: 5, [b]: 5 });
      expect(claimed.filter((d) => d.projectId === b).map((d) => d.id)).toEqual(bIds);
      const perEndpoint = countBy(
        claimed.filter((d) => d.projectId === a),
        (d) => d.endpointKey,
      );
      expect(Object.keys(perEndpoint).sort()).toEqual([...aHooks].sort());
      expect(Object.values(perEndpoint).sort()).toEqual([1, 2, 2]);
      expect(claimed.every((d) => d.attempt === 1 && !d.probe)).toBe(true);

      // A at its cap (16 in flight): B's next delivery is taken, and nothing of A's.
      const [bNext] = await pending(b, { webhookId: bHook }, 1);
      const next = await claim({ free: 8 }, inFlight({ [a]: 16, [b]: 5 }));
      expect(next.map((d) => d.id)).toEqual([bNext]);
    });

    it('takes at most perEndpoint from one endpoint, counting those in flight', async () => {
      const p = await newProject();
      const hook = await subscribe(p);
      await pending(p, { webhookId: hook }, 50);
      expect(await claim({ perEndpoint: 8 })).toHaveLength(8);
      expect(await claim({ perEndpoint: 8 }, inFlight({ [p]: 6 }, { [hook]: 6 }))).toHaveLength(2);
      expect(await claim({ perEndpoint: 8 }, inFlight({ [p]: 8 }, { [hook]: 8 }))).toEqual([]);
    });

    it('takes at most perProject from one project, counting those in flight', async () => {
      const p = await newProject();
      const hooks = [await subscribe(p), await subscribe(p), await subscribe(p)];
      for (const hook of hooks) await pending(p, { webhookId: hook }, 50);
      const first = await claim({ perProject: 16 });
      expect(first).toHaveLength(16);
      expect(Math.max(...Object.values(countBy(first, (d) => d.endpointKey)))).toBeLessThanOrEqual(
        8,
      );
      expect(await claim({ perProject: 16 }, inFlight({ [p]: 10 }))).toHaveLength(6);
      expect(await claim({ perProject: 16 }, inFlight({ [p]: 16 }))).toEqual([]);
    });

    it('breaks ties by waiting time: of endpoints (and projects) with as many in flight, the one whose oldest due delivery is oldest goes first', async () => {
      // Ids grow with time: `late`'s key sorts after `early`'s, but its delivery is older.
      const p = await newProject();
      const early = await subscribe(p);
      const late = await subscribe(p);
      const [waiting] = await pending(p, { webhookId: late }, 1);
      await pending(p, { webhookId: early }, 1);
      const [taken] = await claim({ free: 1 });
      expect(taken.id).toBe(waiting);
      expect((await claim({ free: 1 }))[0].endpointKey).toBe(early);

      // Between projects alike.
      const q = await newProject();
      const r = await newProject();
      const qHook = await subscribe(q);
      const rHook = await subscribe(r);
      const [older] = await pending(r, { webhookId: rHook }, 1);
      await pending(q, { webhookId: qHook }, 1);
      const [first] = await claim({ free: 1 });
      expect(first.id).toBe(older);
    });

    it("keeps a task's order per endpoint: a later delivery of the same task waits while an earlier one is pending", async () => {
      const p = await newProject();
      const one = await subscribe(p);
      const two = await subscribe(p);
      const task = newId();
      const [first, second] = await pending(p, { webhookId: one }, [task, task]);
      const [elsewhere] = await pending(p, { webhookId: two }, [task]);
      const [otherTask] = await pending(p, { webhookId: one }, 1);

      const claimed = await claim();
      // The same task's delivery to another endpoint, and another task's, do not wait.
      expect(claimed.map((d) => d.id).sort()).toEqual([first, elsewhere, otherTask].sort());
      const firstClaim = claimed.find((d) => d.id === first)!;

      // A failed first try stays pending (retried in 10 s): the second still waits.
      await record([firstClaim], failure({ retryInSeconds: 10 }));
      expect(await claim()).toEqual([]);
      // …even once the first is due again: it goes first.
      await db.query(`UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = $1`, [
        first,
      ]);
      const retried = await claim();
      expect(retried.map((d) => d.id)).toEqual([first]);
      await record(retried, delivered);
      expect((await claim()).map((d) => d.id)).toEqual([second]);
    });

    it('an open circuit offers one probe once probe_at has come and not before; a disabled one offers nothing', async () => {
      const p = await newProject();
      const hook = await subscribe(p);
      const ids = await pending(p, { webhookId: hook }, 8);
      // Eight failures with no wait before their retries: due again at once, but parked.
      const { disabled } = await record(await claim(), failure());
      expect(disabled).toEqual([]);
      expect(await endpoint(hook)).toMatchObject({ circuit: 'open', failures: 8 });
      expect(await claim()).toEqual([]);

      await probeDue(hook);
      const [probe, ...more] = await claim();
      expect(more).toEqual([]);
      expect(probe).toMatchObject({ endpointKey: hook, probe: true, attempt: 2 });
      expect(ids).toContain(probe.id);
      // The probe's turn went with it: probe_at is past the lease, so no second probe meanwhile.
      expect((await endpoint(hook))!.probe_in).toBeGreaterThan(LEASE_SECONDS - 2);
      expect(await claim()).toEqual([]);
      const rows = await deliveryRows(ids);
      expect(rows.map((row) => row.attempt).sort()).toEqual([1, 1, 1, 1, 1, 1, 1, 2]);

      await db.query(
        `UPDATE webhook_endpoints SET circuit = 'disabled', probe_at = now() - interval '1 minute'
          WHERE key = $1`,
        [hook],
      );
      await db.query(`UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = $1`, [
        probe.id,
      ]);
      expect(await claim()).toEqual([]);
    });

    it('two concurrent claims never take the same row', async () => {
      const a = await newProject();
      const b = await newProject();
      const all: string[] = [];
      for (const project of [a, b]) {
        for (let i = 0; i < 3; i++) {
          all.push(...(await pending(project, { webhookId: await subscribe(project) }, 20)));
        }
      }
      const taken: ClaimedDelivery[] = [];
      for (let round = 0; round < 40 && taken.length < all.length; round++) {
        const [mine, theirs] = await Promise.all([
          claim({ free: 16 }),
          claim({ free: 16 }, IDLE, rival),
        ]);
        taken.push(...mine, ...theirs);
      }
      const ids = taken.map((d) => d.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect([...ids].sort()).toEqual([...all].sort());
      const rows = await deliveryRows(all);
      expect(rows.every((row) => row.attempt === 1)).toBe(true);
    });

    it("of two concurrent claims, only one gets an open circuit's probe", async () => {
      const p = await newProject();
      const hook = await subscribe(p);
      await pending(p, { webhookId: hook }, 20);
      await record(await claim({ perEndpoint: 5 }), failure());
      expect(await endpoint(hook)).toMatchObject({ circuit: 'open' });
      for (let round = 0; round < 10; round++) {
        await probeDue(hook);
        const [mine, theirs] = await Promise.all([claim(), claim({}, IDLE, rival)]);
        expect({ round, probes: [...mine, ...theirs].map((d) => d.probe) }).toEqual({
          round,
          probes: [true],
        });
      }
    });
  });

  describe('record', () => {
    it('four failures in a row leave the circuit closed, the fifth opens it; a delivery that gets through closes it', async () => {
      const p = await newProject();
      const hook = await subscribe(p);
      await pending(p, { webhookId: hook }, 6);
      const claimed = await claim();
      await record(claimed.slice(0, 4), failure());
      expect(await endpoint(hook)).toMatchObject({
        circuit: 'closed',
        failures: 4,
        last_error: 'Endpoint answered 500',
        probe_at: null,
      });
      await record(claimed.slice(4, 5), failure());
      const open = (await endpoint(hook))!;
      expect(open).toMatchObject({ circuit: 'open', failures: 5, probes: 0 });
      expect(open.opened_at).not.toBeNull();
      // The first probe after the schedule's first step (10 s ± 10 %).
      expect(open.probe_in).toBeGreaterThan(8.5);
      expect(open.probe_in).toBeLessThan(11.5);
      const [state] = (await outbox.endpointStates([hook])).values();
      expect(state).toMatchObject({
        circuit: 'open',
        failures: 5,
        lastError: 'Endpoint answered 500',
        pending: 6,
        dropped: 0,
      });
      expect(state.nextProbeAt).toEqual(open.probe_at);

      // The sixth, in flight when it opened, succeeds: the endpoint works after all.
      await record(claimed.slice(5), delivered);
      expect(await endpoint(hook)).toMatchObject({
        circuit: 'closed',
        failures: 0,
        probes: 0,
        probe_at: null,
        opened_at: null,
        last_error: null,
      });
    });

    it('a successful probe closes an open circuit, and the backlog is offered again', async () => {
      const p = await newProject();
      const hook = await subscribe(p);
      await pending(p, { webhookId: hook }, 12);
      await record(await claim({ perEndpoint: 5 }), failure({ retryInSeconds: 60 }));
      expect(await endpoint(hook)).toMatchObject({ circuit: 'open' });
      await probeDue(hook);
      const probe = await claim();
      // The oldest due: one never tried (those tried wait 60 s for their retry).
      expect(probe).toHaveLength(1);
      expect(probe[0]).toMatchObject({ probe: true, attempt: 1 });
      await record(probe, delivered);
      expect(await endpoint(hook)).toMatchObject({ circuit: 'closed', failures: 0 });
      expect(await claim()).toHaveLength(6);
    });

    it('an unreachable endpoint (refused, connect time-out, DNS) opens at once', async () => {
      const p = await newProject();
      const key = `url:${p}:http://127.0.0.1:9`;
      await pending(p, { url: 'http://127.0.0.1:9/mine' }, 2);
      const [first] = await claim();
      expect(first.endpointKey).toBe(key);
      await record([first], refused);
      expect(await endpoint(key)).toMatchObject({
        circuit: 'open',
        failures: 1,
        last_error: 'connect ECONNREFUSED 127.0.0.1:9',
      });
    });

    it('each failed probe moves the next one a step further; when the schedule is used up the endpoint is disabled and reported', async () => {
      const p = await newProject();
      const hook = await subscribe(p);
      await pending(p, { webhookId: hook }, 5);
      await record((await claim()).slice(0, 1), refused);
      for (const [probes, step] of [
        [1, 20],
        [2, 30],
      ]) {
        await probeDue(hook);
        const { disabled } = await record(await claim(), refused);
        expect(disabled).toEqual([]);
        const row = (await endpoint(hook))!;
        expect(row).toMatchObject({ circuit: 'open', probes });
        expect(row.probe_in).toBeGreaterThan(step * 0.9 - 1);
        expect(row.probe_in).toBeLessThan(step * 1.1 + 1);
      }
      await probeDue(hook);
      const { disabled } = await record(await claim(), refused);
      expect(disabled).toEqual([
        { key: hook, reason: 'Endpoint failed for 1 min: connect ECONNREFUSED 127.0.0.1:9' },
      ]);
      expect(await endpoint(hook)).toMatchObject({
        circuit: 'disabled',
        probes: 3,
        probe_at: null,
      });
      // Reported once: a later outcome (an attempt that was in flight) does not report it again.
      await db.query(`UPDATE webhook_deliveries SET next_attempt_at = now()`);
      await db.query(`UPDATE webhook_endpoints SET circuit = 'closed' WHERE key = $1`, [hook]);
      const late = (await claim()).slice(0, 1);
      await db.query(`UPDATE webhook_endpoints SET circuit = 'disabled' WHERE key = $1`, [hook]);
      expect((await record(late, refused)).disabled).toEqual([]);
    });

    it('410 Gone disables the endpoint at once', async () => {
      const p = await newProject();
      const hook = await subscribe(p);
      await pending(p, { webhookId: hook }, 1);
      const { disabled } = await record(
        await claim(),
        failure({
          state: 'failed',
          statusCode: 410,
          error: 'Endpoint answered 410 Gone',
          gone: true,
        }),
      );
      expect(disabled).toEqual([{ key: hook, reason: 'Endpoint answered 410 Gone' }]);
      expect(await endpoint(hook)).toMatchObject({ circuit: 'disabled', failures: 1 });
    });

    it('deliveries failed unsent because their owner disabled the subscription do not count against its circuit', async () => {
      const p = await newProject();
      const other = await subscribe(p);
      const off = await subscribe(p, { enabled: false });
      await pending(p, { webhookId: off }, 8);
      const claimed = await claim();
      expect(claimed.every((d) => !d.endpointEnabled)).toBe(true);
      // What the dispatcher records for them, without a request.
      const { recorded, disabled } = await record(claimed, {
        state: 'failed',
        statusCode: null,
        error: 'Endpoint disabled',
        durationMs: 0,
      });
      expect(recorded.size).toBe(8);
      expect(disabled).toEqual([]);
      expect(await endpoint(off)).toBeUndefined();
      expect(await endpoint(other)).toBeUndefined();
    });

    it('an outcome whose lease was lost is not recorded and moves no circuit', async () => {
      const p = await newProject();
      const hook = await subscribe(p);
      await pending(p, { webhookId: hook }, 1);
      const [stale] = await claim();
      // Its lease ran out and another process took it again (the next attempt).
      await db.query(`UPDATE webhook_deliveries SET attempt = attempt + 1 WHERE id = $1`, [
        stale.id,
      ]);
      const { recorded, disabled } = await record([stale], refused);
      expect(recorded.size).toBe(0);
      expect(disabled).toEqual([]);
      expect(await endpoint(hook)).toBeUndefined();
    });
  });

  describe('dropOverflow', () => {
    it('drops the oldest beyond the newest max of each crowded endpoint, and counts them', async () => {
      const p = await newProject();
      const crowded = await subscribe(p);
      const within = await subscribe(p);
      const ids = await pending(p, { webhookId: crowded }, 12);
      const untouched = await pending(p, { webhookId: within }, 5);
      const urlIds = await pending(p, { url: 'http://127.0.0.1:9/task' }, 7);

      expect(await outbox.dropOverflow(5)).toBe(7 + 2);
      const rows = await deliveryRows(ids);
      expect(rows.map((row) => row.state)).toEqual([
        ...Array<string>(7).fill('dropped'),
        ...Array<string>(5).fill('pending'),
      ]);
      for (const row of rows.slice(0, 7)) {
        expect(row).toMatchObject({
          error: 'Dropped: the endpoint had more than 5 pending deliveries',
          next_attempt_at: null,
        });
      }
      expect((await deliveryRows(untouched)).every((row) => row.state === 'pending')).toBe(true);
      expect((await deliveryRows(urlIds)).map((row) => row.state)).toEqual([
        'dropped',
        'dropped',
        ...Array<string>(5).fill('pending'),
      ]);
      expect(await endpoint(crowded)).toMatchObject({ circuit: 'closed', dropped: 7 });
      expect(await endpoint(within)).toBeUndefined();
      expect(await endpoint(`url:${p}:http://127.0.0.1:9`)).toMatchObject({ dropped: 2 });
      const [state] = (await outbox.endpointStates([crowded])).values();
      expect(state).toMatchObject({ pending: 5, dropped: 7 });

      expect(await outbox.dropOverflow(5)).toBe(0);
      // The count adds up over sweeps.
      const more = await pending(p, { webhookId: crowded }, 3);
      expect(await outbox.dropOverflow(5)).toBe(3);
      expect((await deliveryRows([...ids.slice(7), ...more])).map((row) => row.state)).toEqual([
        ...Array<string>(3).fill('dropped'),
        ...Array<string>(5).fill('pending'),
      ]);
      expect(await endpoint(crowded)).toMatchObject({ dropped: 10 });
    });
  });

  describe('disableEndpoint', () => {
    async function noticesOf(projectId: string) {
      return db.query<any[]>(
        `SELECT webhook_id, event_type, body, state, message_id, endpoint_key
           FROM webhook_deliveries WHERE project_id = $1 AND event_type = 'webhook.disabled'
          ORDER BY webhook_id`,
        [projectId],
      );
    }

    it("disables the subscription, fails its backlog, and notifies the project's other enabled subscriptions only", async () => {
      const p = await newProject();
      const q = await newProject();
      const dead = await subscribe(p);
      const healthy = await subscribe(p);
      const unfiltered = await subscribe(p, { events: ['task.killed'] });
      await subscribe(p, { enabled: false });
      await subscribe(q);
      const backlog = await pending(p, { webhookId: dead }, 3);
      const others = await pending(p, { webhookId: healthy }, 2);
      const [gone] = (await claim()).filter((d) => d.id === backlog[0]);
      const { disabled } = await record(
        [gone],
        failure({
          state: 'failed',
          statusCode: 410,
          error: 'Endpoint answered 410 Gone',
          gone: true,
        }),
      );
      expect(disabled).toEqual([{ key: dead, reason: 'Endpoint answered 410 Gone' }]);

      await outbox.disableEndpoint(dead, disabled[0].reason);
      const [webhook] = await db.query<any[]>(
        `SELECT enabled, disabled_reason, url FROM webhooks WHERE id = $1`,
        [dead],
      );
      expect(webhook).toMatchObject({
        enabled: false,
        disabled_reason: 'Endpoint answered 410 Gone',
      });
      const rows = await deliveryRows(backlog);
      expect(rows.map((row) => [row.state, row.error])).toEqual([
        ['failed', 'Endpoint answered 410 Gone'],
        ['failed', 'Endpoint disabled'],
        ['failed', 'Endpoint disabled'],
      ]);
      // The healthy subscription's own deliveries are untouched.
      expect((await deliveryRows(others)).map((row) => row.state)).toEqual(['pending', 'pending']);

      const notices = await noticesOf(p);
      expect(notices.map((n) => n.webhook_id).sort()).toEqual([healthy, unfiltered].sort());
      for (const notice of notices) {
        expect(notice).toMatchObject({
          state: 'pending',
          endpoint_key: notice.webhook_id,
          message_id: expect.stringMatching(new RegExp(`^msg_${dead}_disabled_\\d+$`)),
        });
        const body = JSON.parse(notice.body);
        expect(body).toEqual({
          type: 'webhook.disabled',
          timestamp: expect.any(String),
          data: {
            project_id: p,
            webhook_id: dead,
            url: webhook.url,
            reason: 'Endpoint answered 410 Gone',
          },
        });
        expect(Math.abs(Date.parse(body.timestamp) - Date.now())).toBeLessThan(60_000);
      }
      expect(await noticesOf(q)).toEqual([]);
      // The notices are claimable like any delivery, one per subscription.
      const claimed = await claim();
      expect(claimed.filter((d) => d.body.includes('webhook.disabled'))).toHaveLength(2);
    });

    it('keeps the word of an owner who disabled the subscription meanwhile: no reason, no notice', async () => {
      const p = await newProject();
      const dead = await subscribe(p);
      await subscribe(p); // enabled: it would get a notice if one were sent
      const backlog = await pending(p, { webhookId: dead }, 2);
      await record((await claim()).filter((d) => d.webhookId === dead).slice(0, 1), refused);
      // The owner switches it off while its circuit is being disabled.
      await db.query(`UPDATE webhooks SET enabled = false WHERE id = $1`, [dead]);

      await outbox.disableEndpoint(dead, 'Endpoint failed for 1 min: connect ECONNREFUSED');
      const [webhook] = await db.query<any[]>(
        `SELECT enabled, disabled_reason FROM webhooks WHERE id = $1`,
        [dead],
      );
      expect(webhook).toEqual({ enabled: false, disabled_reason: null });
      expect((await deliveryRows(backlog)).map((row) => row.state)).toEqual(['failed', 'failed']);
      expect(await noticesOf(p)).toEqual([]);
    });

    it("forgets a task URL's endpoint, fails its backlog and notifies every enabled subscription", async () => {
      const p = await newProject();
      const hook = await subscribe(p);
      const key = `url:${p}:http://127.0.0.1:9`;
      const backlog = await pending(p, { url: 'http://127.0.0.1:9/task' }, 3);
      await record((await claim()).slice(0, 1), refused);
      expect(await endpoint(key)).toMatchObject({ circuit: 'open' });

      await outbox.disableEndpoint(key, 'Endpoint failed for 1 min: connect ECONNREFUSED');
      expect(await endpoint(key)).toBeUndefined();
      expect((await deliveryRows(backlog)).map((row) => [row.state, row.error])).toEqual([
        ['failed', 'Endpoint disabled'],
        ['failed', 'Endpoint disabled'],
        ['failed', 'Endpoint disabled'],
      ]);
      const notices = await noticesOf(p);
      expect(notices).toHaveLength(1);
      expect(notices[0].webhook_id).toBe(hook);
      expect(JSON.parse(notices[0].body).data).toEqual({
        project_id: p,
        webhook_id: null,
        // The origin only: a task's full URL may carry a secret of that task's.
        url: 'http://127.0.0.1:9',
        reason: 'Endpoint failed for 1 min: connect ECONNREFUSED',
      });
      // A later task's delivery there starts with a closed circuit.
      await pending(p, { url: 'http://127.0.0.1:9/later' }, 1);
      const later = (await claim()).filter((d) => d.endpointKey === key);
      expect(later).toHaveLength(1);
      expect(later[0].probe).toBe(false);
    });
  });

  describe('sealed secrets', () => {
    it('a claim opens sealed signing secrets (and legacy plain ones); a project secret is stored sealed', async () => {
      const box = SecretBox.from(KEYS);
      const projectId = await newProject();
      const legacy = await subscribe(projectId);
      const sealed = await subscribe(projectId);
      await db.query(
        `UPDATE webhooks SET secret = $2, previous_secret = $3, previous_secret_until = now() + interval '1 hour' WHERE id = $1`,
        [
          sealed,
          box.seal('whsec_bmV3', sealedContext.webhookSecret(projectId, sealed)),
          box.seal('whsec_b2xk', sealedContext.webhookPreviousSecret(projectId, sealed)),
        ],
      );
      await pending(projectId, { webhookId: legacy }, 1);
      await pending(projectId, { webhookId: sealed }, 1);
      const claimed = await claim();
      expect(Object.fromEntries(claimed.map((d) => [d.webhookId, d.secrets]))).toEqual({
        [legacy]: ['whsec_aW50LW91dGJveA=='],
        [sealed]: ['whsec_bmV3', 'whsec_b2xk'],
      });

      const secret = await outbox.projectSecret(projectId);
      expect(secret).toMatch(/^whsec_/);
      const [row] = await db.query<{ secret: string }[]>(
        `SELECT secret FROM project_webhook_secrets WHERE project_id = $1`,
        [projectId],
      );
      expect(row.secret).toMatch(/^v2\./);
      expect(row.secret).not.toContain(secret.slice(6));
      expect(await rival.projectSecret(projectId)).toBe(secret);
    });

    it('a secret sealed for another project does not open: the claim fails rather than sign with it', async () => {
      const box = SecretBox.from(KEYS);
      const projectId = await newProject();
      const other = await newProject();
      const webhookId = await subscribe(projectId);
      await db.query(`UPDATE webhooks SET secret = $2 WHERE id = $1`, [
        webhookId,
        box.seal('whsec_bmV3', sealedContext.webhookSecret(other, webhookId)),
      ]);
      await pending(projectId, { webhookId }, 1);
      await expect(claim()).rejects.toThrow(/does not open/);
    });
  });
});
