/**
 * ui: the dashboard's performance bars (issue 16), in the real browser (Debian's Chromium driven
 * by playwright-core, never a downloaded one):
 * - the task list's first render, the server's answer and the paint, on a project with
 *   `KILN_BENCH_UI_TASKS` (1,000,000) tasks: under 1 s; newest first, and filtered by code and
 *   status (the filter a dashboard uses most);
 * - the page's JavaScript: under 250 KB gzipped (what the API serves, gzipped here);
 * - a line printed by a running task shows in its open page within 1 s.
 *
 * The tasks are written straight into Postgres (as `backlog` does: the API's write path is
 * `ingest`'s subject, not this one's), ended ones of every final status over the last 30 days
 * plus the latest queued on a cluster no worker serves. Each render is a fresh page load signed
 * in by cookie (`POST /ui/session`), timed from the navigation until the first row is in the
 * DOM and two animation frames have passed (a paint). The log lines come from a cold task of the
 * Node test image that prints `mark <Date.now()>` every `_LOG_INTERVAL_MS` (its `marks`): when
 * it printed, by the host's clock, against when the page's DOM got the line, by the same clock.
 */
import { gzipSync } from 'node:zlib';
import type { Page } from 'playwright-core';
import { Pool } from 'pg';
import { NODE_HOT_IMAGE } from '../test/support/images';
import { setting } from './lib/env';
import { Api, request } from './lib/http';
import { newProject, startKiln } from './lib/kiln';
import { defer } from './lib/procs';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';
import { summarize } from './lib/stats';

const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';
const FIRST_RENDER_MS = 1000;
const SCRIPT_GZIP_BYTES = 250 * 1024;
const LINE_SHOWN_MS = 1000;
const FINAL = ['complete', 'error', 'timeout', 'killed', 'cancelled'];
/** Run in the page (as text: the bench is compiled without the DOM's types): a paint has passed. */
const TWO_FRAMES =
  'new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))';
/**
 * Run in the page: notes when each whole `mark …` line (its newline arrived) first shows in the
 * log, in `window.kilnBenchSeen`.
 */
const WATCH_MARKS = `{
  const seen = (window.kilnBenchSeen = []);
  const pre = document.querySelector('pre.log');
  new MutationObserver(() => {
    const at = Date.now();
    const lines = (pre.textContent || '').split('\\n').slice(0, -1);
    for (const line of lines) {
      if (line.startsWith('mark ') && !seen.some(([known]) => known === line)) seen.push([line, at]);
    }
  }).observe(pre, { childList: true, characterData: true, subtree: true });
}`;

export async function ui(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    tasks: setting('KILN_BENCH_UI_TASKS', 1_000_000),
    loads: setting('KILN_BENCH_UI_LOADS', 20),
    logLines: setting('KILN_BENCH_UI_LOG_LINES', 20),
    logIntervalMs: setting('KILN_BENCH_UI_LOG_INTERVAL_MS', 500),
  };
  const kiln = await startKiln(ctx.infra, 'ui', { workerConcurrency: 2 });
  const project = await newProject(kiln, 'bench-ui');
  const token = project.api.token;
  await project.api.ok('POST', `/2/projects/${project.id}/codes`, {
    name: 'marks',
    image: NODE_HOT_IMAGE,
  });
  await new Api(kiln.url, kiln.adminToken).ok('PUT', `/2/projects/${project.id}/clusters/parked`);

  const db = new Pool({ connectionString: ctx.infra.databaseUrl, max: 1 });
  defer('close the Postgres pool', () => db.end());
  console.log(`[ui] writing ${fmt(params.tasks)} tasks into Postgres`);
  const seedSeconds = await seed(db, project.id, params.tasks);
  console.log(`[ui]   ${fmt(seedSeconds, 1)} s with VACUUM ANALYZE`);

  const script = await servedScript(kiln.url);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox'],
  });
  defer('close Chromium', () => browser.close());
  const context = await browser.newContext({ baseURL: kiln.url });
  const signIn = await context.request.post('/ui/session', { data: { token } });
  if (!signIn.ok()) throw new Error(`sign-in: ${signIn.status()} ${await signIn.text()}`);
  const page = await context.newPage();

  const renders: Record<string, number[]> = { newest: [], 'code and status': [] };
  const lists: Record<string, string> = {
    newest: `/ui/p/${project.id}/tasks`,
    'code and status': `/ui/p/${project.id}/tasks?code=bench&status=error`,
  };
  for (let i = 0; i < params.loads; i++) {
    ctx.deadline.check();
    for (const [name, path] of Object.entries(lists)) {
      renders[name].push(await firstRender(page, path));
    }
  }

  ctx.deadline.check();
  const shown = await lineLatencies(page, project.id, project.api, params);

  const rows: Row[] = [];
  const details: Record<string, unknown> = { seedSeconds, script: script.name, renders, shown };
  for (const [name, times] of Object.entries(renders)) {
    const [cold, ...warm] = times;
    const s = summarize(warm);
    rows.push({
      metric: `task list first render, ${name}, ${fmt(params.tasks)} tasks: first load; warm p50 / p90 / max`,
      value: `${fmt(cold)} ms; ${fmt(s.p50)} / ${fmt(s.p90)} / ${fmt(s.max)} ms`,
      target: `< ${FIRST_RENDER_MS} ms`,
      met: Math.max(cold, s.max) < FIRST_RENDER_MS,
    });
  }
  rows.push({
    metric: `page JavaScript (${script.name}), gzipped`,
    value: `${fmt(script.gzipBytes / 1024, 1)} KB (${fmt(script.bytes / 1024, 1)} KB as served)`,
    target: '< 250 KB',
    met: script.gzipBytes < SCRIPT_GZIP_BYTES,
  });
  const s = summarize(shown);
  rows.push({
    metric: `a printed line shown in the open task page (${shown.length} lines): p50 / p90 / max`,
    value: `${fmt(s.p50)} / ${fmt(s.p90)} / ${fmt(s.max)} ms`,
    target: `< ${LINE_SHOWN_MS} ms`,
    met: shown.length > 0 && s.max < LINE_SHOWN_MS,
  });
  return { ...resultHeader('ui', ctx, startedAt), params, rows, details };
}

/**
 * Writes `n` tasks of the `bench` code into the project: ended ones of every final status spread
 * over the last 30 days (newest last), one in 500 queued on `parked` (no worker takes them).
 */
async function seed(db: Pool, projectId: string, n: number): Promise<number> {
  const started = performance.now();
  const [code] = (
    await db.query<{ id: string; latest_revision_id: string; rev: number }>(
      `SELECT id, latest_revision_id, rev FROM codes WHERE project_id = $1 AND name = 'bench'`,
      [projectId],
    )
  ).rows;
  const stepMs = Math.floor((30 * 24 * 3600 * 1000) / n);
  const base = Date.now() - 30 * 24 * 3600 * 1000;
  const CHUNK = 100_000;
  for (let from = 1; from <= n; from += CHUNK) {
    const to = Math.min(n, from + CHUNK - 1);
    await db.query(
      `INSERT INTO tasks (id, project_id, code_id, code_revision_id, code_name, code_rev, status,
                          priority, payload, timeout, cluster, label, run_at, enqueued_at,
                          created_at, updated_at, start_time, end_time, duration_ms, exit_code)
       SELECT lpad(to_hex(floor(extract(epoch FROM t.ts))::bigint), 8, '0') || 'b1' || lpad(to_hex(g), 14, '0'),
              $1, $2, $3, 'bench', $4,
              CASE WHEN g % 500 = 0 THEN 'queued'
                   WHEN (g::bigint * 7919) % 100 < 90 THEN 'complete'
                   ELSE ($5::text[])[2 + g % 4] END,
              0, '{"n":' || g || '}', 3600,
              CASE WHEN g % 500 = 0 THEN 'parked' ELSE 'default' END,
              CASE WHEN g % 100 = 0 THEN 'nightly' ELSE '' END,
              t.ts, t.ts, t.ts, t.ts,
              CASE WHEN g % 500 = 0 THEN NULL ELSE t.ts END,
              CASE WHEN g % 500 = 0 THEN NULL ELSE t.ts + interval '1 second' END,
              CASE WHEN g % 500 = 0 THEN NULL ELSE 1000 END,
              CASE WHEN g % 500 = 0 THEN NULL ELSE 0 END
         FROM generate_series($6::int, $7::int) AS g,
              LATERAL (SELECT to_timestamp(($8::bigint + g::bigint * $9::bigint) / 1000.0) AS ts) AS t`,
      [projectId, code.id, code.latest_revision_id, code.rev, FINAL, from, to, base, stepMs],
    );
    process.stdout.write(`\r[ui]   ${fmt(to)} rows`);
  }
  process.stdout.write('\n');
  await db.query('VACUUM ANALYZE tasks');
  return (performance.now() - started) / 1000;
}

/** The script index.html loads, as the API serves it, and its size gzipped. */
async function servedScript(url: string) {
  const index = await request('GET', `${url}/ui/`);
  const src = /<script[^>]+src="([^"]+)"/.exec(index.text)?.[1];
  if (!src) throw new Error('no script in /ui/');
  const answer = await fetch(`${url}${src}`);
  const body = Buffer.from(await answer.arrayBuffer());
  return { name: src, bytes: body.length, gzipBytes: gzipSync(body).length };
}

/** A fresh load of `path`: ms until its first task row is in the DOM and painted. */
async function firstRender(page: Page, path: string): Promise<number> {
  await page.goto('about:blank');
  const started = performance.now();
  await page.goto(path, { waitUntil: 'commit' });
  await page.locator('tbody tr a').first().waitFor({ timeout: 30_000 });
  await page.evaluate(TWO_FRAMES);
  return performance.now() - started;
}

/**
 * Runs a `marks` task with its page open; answers, for each line printed after the page was
 * following, the ms from its printing to its arrival in the page's DOM.
 */
async function lineLatencies(
  page: Page,
  projectId: string,
  api: Api,
  marks: { logLines: number; logIntervalMs: number },
): Promise<number[]> {
  const payload = {
    quiet: true,
    marks: { count: marks.logLines, intervalMs: marks.logIntervalMs },
  };
  const created = await api.ok('POST', `/2/projects/${projectId}/tasks`, {
    tasks: [{ code_name: 'marks', payload: JSON.stringify(payload) }],
  });
  const taskId = (created.body.tasks as { id: string }[])[0].id;
  await page.goto(`/ui/p/${projectId}/tasks/${taskId}`);
  await page.locator('pre.log').waitFor();
  await page.evaluate(WATCH_MARKS);
  const followingSince = Date.now();
  for (;;) {
    const task = await api.ok('GET', `/2/projects/${projectId}/tasks/${taskId}`);
    if (FINAL.includes(task.body.status as string)) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const seen = await page.evaluate<[string, number][]>('window.kilnBenchSeen');
  return (
    seen
      .map(([line, at]) => ({ printed: Number(line.slice(5)), at }))
      // Lines printed before the page's stream was surely open came as its history, not live.
      .filter((mark) => mark.printed > followingSince + 500)
      .map((mark) => mark.at - mark.printed)
  );
}
