import { randomBytes } from 'node:crypto';
import { waitUntil } from './support/kiln';
import { OwnStack } from './support/own-stack';
import { Receiver } from './support/receiver';

/**
 * Issue 15, part 4: OpenTelemetry traces. A stack of the suite's own exports spans (OTLP/HTTP,
 * JSON) to a collector in the test, which decodes what each process sends. A task's trace runs
 * from the API request that created it (continuing the client's `traceparent`), through the task
 * row, to the worker's run (image, container, finish) and the scheduler's webhook delivery; the
 * container gets `TRACEPARENT`, and the webhook's receiver gets `traceparent`. A schedule's task
 * starts its trace at the fire.
 */
interface Span {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  attributes: Record<string, unknown>;
}

describe('traces: one trace per task, API to worker to webhook', () => {
  const stack = new OwnStack('traces', 80);
  const collector = new Receiver();
  const hooks = new Receiver();
  let project: { id: string; token: string };

  const as = (method: string, path: string, json?: unknown) =>
    stack.request(method, `/2/projects/${project.id}${path}`, json, project.token);

  /** Every span the collector got so far, decoded from OTLP/JSON. */
  function spans(): Span[] {
    const all: Span[] = [];
    for (const request of collector.received) {
      expect(request.path).toBe('/v1/traces');
      expect(request.headers['content-type']).toMatch(/^application\/json/);
      for (const resource of request.json.resourceSpans as any[]) {
        const service = attributesOf(resource.resource.attributes)['service.name'] as string;
        for (const scope of resource.scopeSpans as any[]) {
          for (const span of scope.spans as any[]) {
            all.push({
              service,
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId ?? '',
              name: span.name,
              attributes: attributesOf(span.attributes ?? []),
            });
          }
        }
      }
    }
    return all;
  }

  async function waitForSpans(what: string, found: (all: Span[]) => boolean): Promise<Span[]> {
    let all: Span[] = [];
    await waitUntil(what, async () => found((all = spans())), {
      timeoutMs: 30_000,
      intervalMs: 200,
      state: () => all.map((span) => `${span.service} ${span.name}`).join(', '),
    });
    return all;
  }

  async function finished(id: string) {
    let task: any;
    await waitUntil(
      `task ${id} to end`,
      async () =>
        !['queued', 'preparing', 'running'].includes(
          (task = (await as('GET', `/tasks/${id}`)).body).status,
        ),
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    return task;
  }

  beforeAll(async () => {
    await collector.start();
    await hooks.start();
    await stack.create({
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.port}`,
      // Spans are sent in batches: every 200 ms here rather than every 5 s.
      OTEL_BSP_SCHEDULE_DELAY: '200',
      KILN_RECONCILE_SECONDS: '1',
    });
    await stack.startApi();
    await stack.startWorker();
    stack.start('scheduler');
    project = await stack.newProject('traces');
    const code = await as('POST', '/codes', {
      name: 'traced',
      image: 'kiln-test/busybox:latest',
      command: 'sh /mnt/kiln/payload.json',
    });
    expect(code.status).toBe(200);
  }, 120_000);

  afterAll(async () => {
    await stack.close();
    await collector.close();
    await hooks.close();
  });

  it("continues the client's trace: API request, worker run, container, webhook delivery", async () => {
    const traceId = randomBytes(16).toString('hex');
    const clientSpan = randomBytes(8).toString('hex');
    const res = await fetch(`${stack.url}/2/projects/${project.id}/tasks`, {
      method: 'POST',
      headers: {
        authorization: `OAuth ${project.token}`,
        'content-type': 'application/json',
        traceparent: `00-${traceId}-${clientSpan}-01`,
      },
      body: JSON.stringify({
        tasks: [
          {
            code_name: 'traced',
            payload: 'echo "TRACEPARENT=$TRACEPARENT"',
            webhook: hooks.url('/task-done'),
          },
        ],
      }),
    });
    expect(res.status).toBe(200);
    const taskId = ((await res.json()) as { tasks: { id: string }[] }).tasks[0].id;
    expect((await finished(taskId)).status).toBe('complete');

    const all = await waitForSpans('the API, worker and scheduler spans', (found) =>
      ['kiln.task.finish', 'kiln.webhook.deliver'].every((name) =>
        found.some((span) => span.traceId === traceId && span.name === name),
      ),
    );
    const trace = all.filter((span) => span.traceId === traceId);
    const one = (name: string) => {
      const matching = trace.filter((span) => span.name === name);
      expect({ name, count: matching.length }).toEqual({ name, count: 1 });
      return matching[0];
    };
    const request = one('POST /2/projects/:projectId/tasks');
    expect(request).toMatchObject({ service: 'kiln-api', parentSpanId: clientSpan });
    expect(request.attributes).toMatchObject({ 'http.response.status_code': 200 });
    // The token never reaches a span.
    expect(JSON.stringify(trace)).not.toContain(project.token);

    const run = one('kiln.task.run');
    expect(run).toMatchObject({ service: 'kiln-worker', parentSpanId: request.spanId });
    expect(run.attributes).toMatchObject({
      'kiln.task_id': taskId,
      'kiln.project_id': project.id,
      'kiln.code': 'traced',
      'kiln.attempt': 1,
    });
    const pull = one('kiln.image.pull');
    const container = one('kiln.container.run');
    expect([pull.parentSpanId, container.parentSpanId]).toEqual([run.spanId, run.spanId]);
    const finish = one('kiln.task.finish');
    expect(finish.service).toBe('kiln-worker');
    expect(finish.attributes).toMatchObject({ 'kiln.status': 'complete' });
    expect([run.spanId, container.spanId]).toContain(finish.parentSpanId);

    // The container's own spans would join as children of its run.
    const log = await fetch(`${stack.url}/2/projects/${project.id}/tasks/${taskId}/log`, {
      headers: { authorization: `OAuth ${project.token}` },
    });
    expect(await log.text()).toBe(`TRACEPARENT=00-${traceId}-${container.spanId}-01\n`);

    const delivery = one('kiln.webhook.deliver');
    expect(delivery).toMatchObject({ service: 'kiln-scheduler', parentSpanId: request.spanId });
    expect(delivery.attributes).toMatchObject({
      'kiln.project_id': project.id,
      'kiln.delivery_state': 'delivered',
      'http.response.status_code': 200,
    });
    const hook = hooks.received.find((received) => received.path === '/task-done');
    expect(hook?.headers.traceparent).toBe(`00-${traceId}-${delivery.spanId}-01`);
  });

  it('a task without a traceparent, or with a malformed one, starts a trace of its own', async () => {
    const res = await fetch(`${stack.url}/2/projects/${project.id}/tasks`, {
      method: 'POST',
      headers: {
        authorization: `OAuth ${project.token}`,
        'content-type': 'application/json',
        traceparent: 'not-a-traceparent',
      },
      body: JSON.stringify({ tasks: [{ code_name: 'traced', payload: 'true' }] }),
    });
    expect(res.status).toBe(200);
    const taskId = ((await res.json()) as { tasks: { id: string }[] }).tasks[0].id;
    expect((await finished(taskId)).status).toBe('complete');
    const all = await waitForSpans('its run', (found) =>
      found.some(
        (span) => span.name === 'kiln.task.run' && span.attributes['kiln.task_id'] === taskId,
      ),
    );
    const run = all.find((span) => span.attributes['kiln.task_id'] === taskId)!;
    const request = all.find((span) => span.spanId === run.parentSpanId);
    expect(request).toMatchObject({
      service: 'kiln-api',
      name: 'POST /2/projects/:projectId/tasks',
      traceId: run.traceId,
      parentSpanId: '',
    });
  });

  it("a schedule's task starts its trace at the schedule's fire", async () => {
    const created = await as('POST', '/schedules', {
      schedules: [
        {
          code_name: 'traced',
          payload: 'echo "TRACEPARENT=$TRACEPARENT"',
          start_at: new Date(Date.now() - 1000).toISOString(),
          run_every: 3600,
          run_times: 1,
        },
      ],
    });
    expect(created.status).toBe(200);
    const scheduleId = created.body.schedules[0].id as string;
    const all = await waitForSpans('the fire and the run', (found) => {
      const fire = found.find(
        (span) =>
          span.name === 'kiln.schedule.fire' && span.attributes['kiln.schedule_id'] === scheduleId,
      );
      return (
        !!fire &&
        found.some((span) => span.name === 'kiln.task.finish' && span.traceId === fire.traceId)
      );
    });
    const fire = all.find((span) => span.attributes['kiln.schedule_id'] === scheduleId)!;
    expect(fire).toMatchObject({ service: 'kiln-scheduler', parentSpanId: '' });
    const taskId = fire.attributes['kiln.task_id'] as string;
    const run = all.find((span) => span.name === 'kiln.task.run' && span.traceId === fire.traceId)!;
    expect(run).toMatchObject({ parentSpanId: fire.spanId });
    expect(run.attributes['kiln.task_id']).toBe(taskId);
    expect((await finished(taskId)).status).toBe('complete');
  });
});

/** OTLP/JSON attributes (`[{key, value: {stringValue | intValue | …}}]`) as a plain object. */
function attributesOf(
  list: { key: string; value: Record<string, unknown> }[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of list) {
    const [kind, raw] = Object.entries(value)[0] ?? [];
    out[key] = kind === 'intValue' ? Number(raw) : raw;
  }
  return out;
}
