import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Browser, BrowserContext, Locator, Page, chromium } from 'playwright-core';
import {
  FINAL_STATUSES,
  TEST_IMAGE,
  TestProject,
  call,
  e2e,
  getTask,
  newProject,
  queueTask,
  registerCode,
  waitForTask,
  waitUntil,
} from './support/kiln';
import { OwnStack } from './support/own-stack';

/**
 * Where the screenshots are written: with KILN_UI_SCREENSHOTS=docs, over the ones the README and
 * docs/dashboard.md show; else beside the test results, so that a test run leaves the checkout
 * as it was (each run's ids and times differ).
 */
const SCREENSHOTS =
  process.env.KILN_UI_SCREENSHOTS === 'docs'
    ? join(__dirname, '..', 'docs', 'screenshots')
    : join(__dirname, '..', '.kiln', 'test-results', 'screenshots');
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const CHROMIUM = '/usr/bin/chromium';

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/**
 * Issue 16, the dashboard's foundation, in Debian's Chromium (playwright-core, never a downloaded
 * browser) against the shared stack: the session (cookie, CSRF, revocation), the headers of
 * `/ui`, and each page: sign-in, tasks (filters, keyboard, bulk cancel), a task (live log,
 * replay with an edited payload), codes, schedules, webhooks, the admin's projects; a read-only
 * token; axe-core on every page.
 */
describe('the dashboard', () => {
  const { url, adminToken } = e2e();
  let browser: Browser;
  let project: TestProject;
  let other: TestProject;
  let readToken: string;
  const contexts: BrowserContext[] = [];

  const path = (who: TestProject, rest: string) => `/2/projects/${who.projectId}/${rest}`;

  async function issueToken(role: string, extra: Record<string, unknown> = {}) {
    const issued = await call('POST', path(project, 'tokens'), {
      token: project.token,
      json: { name: `ui-${role}`, role, ...extra },
    });
    expect(issued.status).toBe(200);
    return issued.body as { id: string; token: string };
  }

  /** A fresh browser profile (its own cookies), at `/ui/`, signed in with `token`. */
  async function signedIn(token: string, base = url): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(`${base}/`);
    await page.getByLabel('Token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    return page;
  }

  /** axe-core's serious and critical findings on the page as it is now. */
  async function accessibilityProblems(page: Page): Promise<string[]> {
    // Evaluated by the DevTools protocol, which the page's CSP does not govern (a <script> tag
    // would be refused by it, as it should be).
    await page.evaluate(AXE);
    const violations = await page.evaluate<AxeViolation[]>(
      '(async () => (await window.axe.run(document, { resultTypes: ["violations"] })).violations)()',
    );
    return violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map(
        (v) =>
          `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
      );
  }

  /** Waits until the (one) element shows `text` (a part of its text, or a match). */
  async function shows(locator: Locator, text: string | RegExp, timeoutMs = 15_000): Promise<void> {
    let seen: string | null = null;
    await waitUntil(
      `the page to show ${String(text)}`,
      async () => {
        seen = await locator.textContent({ timeout: 1000 }).catch(() => null);
        return seen !== null && (typeof text === 'string' ? seen.includes(text) : text.test(seen));
      },
      { timeoutMs, state: () => `it showed ${JSON.stringify(seen)}` },
    );
  }

  async function counts(locator: Locator, n: number): Promise<void> {
    await waitUntil(`${n} of ${String(locator)}`, async () => (await locator.count()) === n, {
      timeoutMs: 15_000,
    });
  }

  async function screenshot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  }

  /** Buttons that would change something (the filter form's button changes nothing), checkboxes, editors. */
  async function actionControls(page: Page): Promise<number> {
    const buttons = page
      .locator('main')
      .getByRole('button', { name: /cancel|retry|pause|resume|run again/i });
    return (
      (await buttons.count()) +
      (await page.locator('main input[type=checkbox], main textarea').count())
    );
  }

  /** The session cookie `POST /ui/session` sets for `token`, and its CSRF secret. */
  async function session(token: string): Promise<{ cookie: string; csrf: string }> {
    const res = await call('POST', '/ui/session', { json: { token }, auth: 'none' });
    expect(res.status).toBe(200);
    const setCookie = res.headers.get('set-cookie') ?? '';
    return { cookie: setCookie.split(';')[0], csrf: res.body.csrf as string };
  }

  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
    });
    project = await newProject('ui');
    other = await newProject('ui-other');
    await registerCode(project, 'hello');
    await registerCode(project, 'report');
    await registerCode(other, 'elsewhere');
    readToken = (await issueToken('read')).token;
  });

  afterAll(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
  });

  describe('serving', () => {
    it('redirects / to /ui/ and answers every /ui path without a file with the app, under a strict CSP', async () => {
      const root = await fetch(`${url}/`, { redirect: 'manual' });
      expect(root.status).toBe(302);
      expect(root.headers.get('location')).toBe('/ui/');
      const page = await fetch(`${url}/ui/p/${project.projectId}/tasks?status=queued`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(page.headers.get('content-security-policy')).toBe(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
      );
      expect(page.headers.get('x-content-type-options')).toBe('nosniff');
      expect(page.headers.get('referrer-policy')).toBe('no-referrer');
      expect(page.headers.get('cache-control')).toBe('no-cache');
      const html = await page.text();
      expect(html).not.toMatch(/<script>|<style|style=/);
      const script = /src="(\/ui\/assets\/app-[A-Z0-9]+\.js)"/.exec(html)?.[1];
      expect(script).toBeDefined();
      const asset = await fetch(`${url}${script}`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(asset.headers.get('content-security-policy')).toContain("default-src 'none'");
      const missing = await call('GET', '/ui/assets/nothing-here.js');
      expect(missing.status).toBe(404);
      expect(missing.body).toEqual({ msg: 'Not found' });
    });
  });

  describe('sessions', () => {
    it('exchanges a token for an HttpOnly, SameSite=Strict cookie; a bad token is a 401 with its msg and no cookie', async () => {
      const bad = await call('POST', '/ui/session', { json: { token: 'kiln_nope' }, auth: 'none' });
      expect(bad.status).toBe(401);
      expect(bad.body).toEqual({ msg: expect.any(String) });
      expect(bad.headers.get('set-cookie')).toBeNull();
      // A form or text/plain post (which another site may send without asking) signs no one in.
      const plain = await call('POST', '/ui/session', {
        body: JSON.stringify({ token: project.token }),
        headers: { 'content-type': 'text/plain' },
        auth: 'none',
      });
      expect(plain.status).toBe(400);
      expect(plain.body.msg).toMatch(/application\/json/);
      expect(plain.headers.get('set-cookie')).toBeNull();
      const missing = await call('POST', '/ui/session', { json: {}, auth: 'none' });
      expect(missing.status).toBe(400);
      expect(missing.body.msg).toMatch(/token/);

      const res = await call('POST', '/ui/session', {
        json: { token: project.token },
        auth: 'none',
      });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        csrf: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
        admin: false,
        project_id: project.projectId,
        role: 'manage',
        expires_at: expect.any(String),
      });
      const hours = (Date.parse(res.body.expires_at) - Date.now()) / 3600_000;
      expect(hours).toBeGreaterThan(11.9);
      expect(hours).toBeLessThanOrEqual(12);
      expect(res.headers.get('set-cookie')).toMatch(
        /^kiln_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Max-Age=43200$/,
      );
      const cookie = res.headers.get('set-cookie')!.split(';')[0];
      const again = await call('GET', '/ui/session', { headers: { cookie }, auth: 'none' });
      expect(again.status).toBe(200);
      expect(again.body).toEqual(res.body);

      const admin = await call('POST', '/ui/session', {
        json: { token: adminToken },
        auth: 'none',
      });
      expect(admin.body).toMatchObject({ admin: true, project_id: null, role: 'admin' });
    });

    it('lets the cookie act as its token, refuses a mutation without the CSRF header (403, nothing changes), and ignores the cookie next to a real token', async () => {
      const { cookie, csrf } = await session(project.token);
      const id = await queueTask(project, { code_name: 'hello', payload: '{}', delay: 3600 });
      const listed = await call('GET', path(project, 'tasks'), {
        headers: { cookie },
        auth: 'none',
      });
      expect(listed.status).toBe(200);
      expect(listed.body.tasks.map((t: { id: string }) => t.id)).toContain(id);

      const noCsrf = await call('POST', path(project, `tasks/${id}/cancel`), {
        headers: { cookie },
        auth: 'none',
      });
      expect(noCsrf.status).toBe(403);
      expect(noCsrf.body.msg).toMatch(/X-Kiln-CSRF/);
      const wrongCsrf = await call('POST', path(project, `tasks/${id}/cancel`), {
        headers: { cookie, 'x-kiln-csrf': `${csrf.slice(0, -1)}x` },
        auth: 'none',
      });
      expect(wrongCsrf.status).toBe(403);
      expect((await getTask(project, id)).status).toBe('queued');

      // Another project's token beside the cookie: the token is who calls, the cookie is ignored.
      const withToken = await call('GET', path(project, 'tasks'), {
        token: other.token,
        headers: { cookie },
      });
      expect(withToken.status).toBe(401);

      const cancelled = await call('POST', path(project, `tasks/${id}/cancel`), {
        headers: { cookie, 'x-kiln-csrf': csrf },
        auth: 'none',
      });
      expect(cancelled.status).toBe(200);
      expect((await getTask(project, id)).status).toBe('cancelled');
    });

    it("keeps another project's session out of this project", async () => {
      const { cookie, csrf } = await session(other.token);
      const id = await queueTask(project, { code_name: 'hello', payload: '{}', delay: 3600 });
      const read = await call('GET', path(project, `tasks/${id}`), {
        headers: { cookie },
        auth: 'none',
      });
      expect(read.status).toBe(401);
      const list = await call('GET', path(project, 'tasks'), { headers: { cookie }, auth: 'none' });
      expect(list.status).toBe(401);
      expect(list.text).not.toContain(id);
      const cancel = await call('POST', path(project, `tasks/${id}/cancel`), {
        headers: { cookie, 'x-kiln-csrf': csrf },
        auth: 'none',
      });
      expect(cancel.status).toBe(401);
      expect((await getTask(project, id)).status).toBe('queued');
    });

    it('ends a session on sign-out (with its CSRF secret), and when its token is revoked', async () => {
      const { cookie, csrf } = await session(project.token);
      const refused = await call('DELETE', '/ui/session', { headers: { cookie }, auth: 'none' });
      expect(refused.status).toBe(403);
      const out = await call('DELETE', '/ui/session', {
        headers: { cookie, 'x-kiln-csrf': csrf },
        auth: 'none',
      });
      expect(out.status).toBe(200);
      expect(out.headers.get('set-cookie')).toMatch(
        /^kiln_session=; HttpOnly; SameSite=Strict; Path=\/; Max-Age=0$/,
      );
      const after = await call('GET', '/ui/session', { headers: { cookie }, auth: 'none' });
      expect(after.status).toBe(401);
      expect(after.body.msg).toMatch(/sign in again/);
      const tasks = await call('GET', path(project, 'tasks'), {
        headers: { cookie },
        auth: 'none',
      });
      expect(tasks.status).toBe(401);

      const issued = await issueToken('queue');
      const revocable = await session(issued.token);
      const revoked = await call('DELETE', path(project, `tokens/${issued.id}`), {
        token: project.token,
      });
      expect(revoked.status).toBe(200);
      const gone = await call('GET', path(project, 'tasks'), {
        headers: { cookie: revocable.cookie },
        auth: 'none',
      });
      expect(gone.status).toBe(401);
      expect(gone.body.msg).toMatch(/revoked/);
    });
  });

  describe('in the browser', () => {
    it('signs in, shows an error msg for a bad token, and renders each page without serious accessibility problems', async () => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      contexts.push(context);
      const page = await context.newPage();
      const consoleErrors: string[] = [];
      page.on('console', (message) => {
        // The browser logs every 4xx it loads; the two 401s (no session yet, the wrong token) are
        // expected. Anything else (a CSP refusal, a script error) is not.
        const text = message.text();
        if (message.type() === 'error' && !text.includes('status of 401')) consoleErrors.push(text);
      });
      await page.goto(`${url}/`);
      await page.waitForURL(`${url}/ui/signin`);
      expect(await accessibilityProblems(page)).toEqual([]);
      await screenshot(page, 'sign-in');
      await page.getByLabel('Token').fill('kiln_wrong');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await shows(page.getByRole('alert'), /OAuth token/);

      const finished = await queueTask(project, {
        code_name: 'report',
        payload: '{"lines":3}',
        label: 'nightly',
      });
      await waitForTask(project, finished);
      await queueTask(project, {
        code_name: 'hello',
        payload: '{"big":"payload-not-in-rows"}',
        delay: 3600,
      });
      const scheduled = await call('POST', path(project, 'schedules'), {
        token: project.token,
        json: {
          schedules: [
            { code_name: 'report', payload: '{}', cron: '0 3 * * *', timezone: 'Europe/Paris' },
          ],
        },
      });
      expect(scheduled.status).toBe(200);
      const hook = await call('POST', path(project, 'webhooks'), {
        token: project.token,
        json: { url: 'http://127.0.0.1:9/hook', description: 'ops alerts' },
      });
      expect(hook.status).toBe(200);

      await page.getByLabel('Token').fill(project.token);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(`${url}/ui/p/${project.projectId}/tasks`);
      expect(await page.evaluate('localStorage.length + sessionStorage.length')).toBe(0);
      const rows = page.locator('table.tasks tbody tr');
      await rows.first().waitFor();
      expect(await page.locator('table.tasks').textContent()).not.toContain('payload-not-in-rows');
      expect(await accessibilityProblems(page)).toEqual([]);
      await screenshot(page, 'tasks');

      // Filters live in the URL, and a reload keeps them.
      await page.getByLabel('Label').fill('nightly');
      await page.getByLabel('Status').selectOption('complete');
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.waitForURL(/\?status=complete&label=nightly$/);
      await page.reload();
      expect(await page.getByLabel('Label').inputValue()).toBe('nightly');
      await counts(rows, 1);
      await shows(rows.first(), finished);

      await page.getByRole('link', { name: finished }).click();
      await page.waitForURL(`${url}/ui/p/${project.projectId}/tasks/${finished}`);
      await shows(page.locator('pre.log'), 'line 3');
      await shows(page.locator('pre.payload'), '{\n  "lines": 3\n}');
      await shows(page.locator('dl.fields'), 'code_name');
      expect(await accessibilityProblems(page)).toEqual([]);
      await screenshot(page, 'task');

      for (const [section, text] of [
        ['Codes', 'report'],
        ['Schedules', 'cron 0 3 * * * (Europe/Paris)'],
        ['Webhooks', 'ops alerts'],
      ]) {
        await page
          .getByRole('navigation', { name: 'Sections' })
          .getByRole('link', { name: section })
          .click();
        await shows(page.getByRole('heading', { level: 1 }), section);
        await shows(page.locator('main table'), text);
        expect(await accessibilityProblems(page)).toEqual([]);
        await screenshot(page, section.toLowerCase());
      }
      expect(consoleErrors).toEqual([]);

      await page.getByRole('button', { name: 'Sign out' }).click();
      await shows(page.getByRole('status'), 'Signed out.');
      const after = await page.evaluate<number>('fetch("/ui/session").then((r) => r.status)');
      expect(after).toBe(401);
    });

    it('shows a line the task prints while it runs, live', async () => {
      const page = await signedIn(project.token);
      const id = await queueTask(project, {
        code_name: 'hello',
        payload: '{"lines":40,"interval":0.5}',
      });
      await page.goto(`${url}/ui/p/${project.projectId}/tasks/${id}`);
      await shows(page.locator('pre.log'), 'line 2', 60_000);
      // The page got the line from the stream, not from a load after the end.
      expect(FINAL_STATUSES).not.toContain((await getTask(project, id)).status);
      await shows(page.locator('pre.log'), 'line 6');
      // Progress the task reports shows while it runs.
      const progress = await call('POST', path(project, `tasks/${id}/progress`), {
        token: project.token,
        json: { percent: 40, msg: 'almost' },
      });
      expect(progress.status).toBe(200);
      await shows(page.locator('main'), '40 %');
      await call('POST', path(project, `tasks/${id}/cancel`), { token: project.token });
      await page.getByText('The task ended: cancelled.').waitFor();
    });

    it('cancels the selected tasks, and shows an API error where the action was taken', async () => {
      const label = `bulk-${Date.now()}`;
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        ids.push(
          await queueTask(project, { code_name: 'hello', payload: '{}', delay: 3600, label }),
        );
      }
      const page = await signedIn(project.token);
      await page.goto(`${url}/ui/p/${project.projectId}/tasks?label=${label}`);
      await page.getByLabel(`Select task ${ids[0]}`).check();
      await page.getByLabel(`Select task ${ids[2]}`).check();
      await page.getByRole('button', { name: 'Cancel selected (2)' }).click();
      await shows(page.getByRole('status'), 'Cancelled 2 of 2.');
      expect((await getTask(project, ids[0])).status).toBe('cancelled');
      expect((await getTask(project, ids[1])).status).toBe('queued');
      expect((await getTask(project, ids[2])).status).toBe('cancelled');

      // Pausing a code that was deleted meanwhile: the API's msg shows beside the codes.
      await registerCode(project, 'doomed');
      await page.goto(`${url}/ui/p/${project.projectId}/codes`);
      await page.getByRole('button', { name: 'Pause doomed' }).waitFor();
      const codeId = (
        await call('GET', path(project, 'codes'), { token: project.token })
      ).body.codes.find((c: { name: string }) => c.name === 'doomed').id as string;
      expect(
        (await call('DELETE', path(project, `codes/${codeId}`), { token: project.token })).status,
      ).toBe(200);
      await page.getByRole('button', { name: 'Pause doomed' }).click();
      await shows(page.getByRole('alert'), /not found/i);
    });

    it('runs a task again with its payload edited, with the original options', async () => {
      const original = await queueTask(project, {
        code_name: 'report',
        payload: '{"lines":1}',
        priority: 1,
        timeout: 120,
        label: 'replayed',
      });
      await waitForTask(project, original);
      const page = await signedIn(project.token);
      await page.goto(`${url}/ui/p/${project.projectId}/tasks/${original}`);
      await page.getByLabel(/Payload for a new task/).fill('{"lines":2,"edited":true}');
      await page.getByRole('button', { name: 'Run again with this payload' }).click();
      await page.waitForURL(
        (u) => /\/tasks\/[0-9a-f]{24}$/.test(u.pathname) && !u.pathname.endsWith(original),
      );
      const copy = page.url().split('/').pop()!;
      const task = await getTask(project, copy);
      expect(task).toMatchObject({
        code_name: 'report',
        payload: '{"lines":2,"edited":true}',
        priority: 1,
        timeout: 120,
        label: 'replayed',
        cluster: 'default',
      });
      await shows(page.locator('pre.log'), 'line 2', 60_000);
    });

    it('shows a read token everything and no action controls, and refuses its mutations', async () => {
      const id = await queueTask(project, { code_name: 'hello', payload: '{}', delay: 3600 });
      const page = await signedIn(readToken);
      await page.locator('table.tasks tbody tr').first().waitFor();
      await page.getByText('read token (read-only)').waitFor();
      expect(await actionControls(page)).toBe(0);
      await page.goto(`${url}/ui/p/${project.projectId}/tasks/${id}`);
      await shows(page.locator('dl.fields'), id);
      expect(await actionControls(page)).toBe(0);
      await page.goto(`${url}/ui/p/${project.projectId}/codes`);
      await shows(page.locator('main table'), 'hello');
      expect(await actionControls(page)).toBe(0);
      expect(await accessibilityProblems(page)).toEqual([]);

      // The page's own session calls a mutation anyway, CSRF header and all: refused.
      const answer = await page.evaluate<{ status: number; body: { msg: string } }>(`(async () => {
        const { csrf } = await (await fetch('/ui/session')).json();
        const res = await fetch('${path(project, `tasks/${id}/cancel`)}', { method: 'POST', headers: { 'X-Kiln-CSRF': csrf } });
        return { status: res.status, body: await res.json() };
      })()`);
      expect(answer.status).toBe(403);
      expect(answer.body.msg).toMatch(/role is read/);
      expect((await getTask(project, id)).status).toBe('queued');
    });

    it('lets the task list be used by keyboard alone', async () => {
      const label = `keys-${Date.now()}`;
      const first = await queueTask(project, {
        code_name: 'hello',
        payload: '{}',
        delay: 3600,
        label,
      });
      const page = await signedIn(project.token);
      await page.goto(`${url}/ui/p/${project.projectId}/tasks?label=${label}`);
      await counts(page.locator('table.tasks tbody tr'), 1);
      // Tab from the top of the page to the task's link, then Enter.
      let focused = '';
      for (let presses = 0; presses < 40 && focused !== first; presses++) {
        await page.keyboard.press('Tab');
        focused = await page.evaluate<string>('document.activeElement?.textContent ?? ""');
      }
      expect(focused).toBe(first);
      await page.keyboard.press('Enter');
      await page.waitForURL(`${url}/ui/p/${project.projectId}/tasks/${first}`);
      // Back, select it with Space, cancel it with the keyboard.
      await page.goBack();
      await counts(page.locator('table.tasks tbody tr'), 1);
      await page.getByLabel(`Select task ${first}`).focus();
      await page.keyboard.press('Space');
      await page.getByRole('button', { name: 'Cancel selected (1)' }).focus();
      await page.keyboard.press('Enter');
      await shows(page.getByRole('status'), 'Cancelled 1 of 1.');
      expect((await getTask(project, first)).status).toBe('cancelled');
    });

    it('returns to sign-in with a message when the session ends: token revoked, token expired', async () => {
      const revocable = await issueToken('manage');
      const page = await signedIn(revocable.token);
      await call('DELETE', path(project, `tokens/${revocable.id}`), { token: project.token });
      await page
        .getByRole('navigation', { name: 'Sections' })
        .getByRole('link', { name: 'Codes' })
        .click();
      await page.waitForURL(`${url}/ui/signin`);
      await shows(page.getByRole('status'), 'its token was revoked');

      const expiring = await issueToken('read', {
        expires_at: new Date(Date.now() + 4000).toISOString(),
      });
      const later = await signedIn(expiring.token);
      await new Promise((resolve) => setTimeout(resolve, 4500));
      await later.reload();
      await later.waitForURL(`${url}/ui/signin`);
      await shows(later.getByRole('status'), 'sign in again');
      await later.getByLabel('Token').waitFor();
    });

    it('gives the admin the projects and a project switcher', async () => {
      const page = await signedIn(adminToken);
      await page.waitForURL(`${url}/ui/projects`);
      await shows(page.locator('main table'), project.projectId);
      expect(await accessibilityProblems(page)).toEqual([]);
      await screenshot(page, 'projects');
      await page.getByLabel('Project').selectOption(other.projectId);
      await page.waitForURL(`${url}/ui/p/${other.projectId}/tasks`);
      await page
        .getByRole('navigation', { name: 'Sections' })
        .getByRole('link', { name: 'Codes' })
        .click();
      await shows(page.locator('main table'), 'elsewhere');
      await page.getByLabel('Project').selectOption(project.projectId);
      await page.waitForURL(`${url}/ui/p/${project.projectId}/codes`);
      await shows(page.locator('main table'), 'report');
    });
  });
  /**
   * The default payload cap is 64 KiB, so only an operator's larger cap (KILN_PAYLOAD_MAX_BYTES)
   * makes payloads the page must not render: an API of its own with one (no worker: the task
   * stays queued).
   */
  describe('on a stack that takes payloads over 64 KB', () => {
    const stack = new OwnStack('ui_payloads', 30);

    beforeAll(async () => {
      await stack.create({ KILN_PAYLOAD_MAX_BYTES: String(256 * 1024) });
      await stack.startApi();
    });

    afterAll(async () => {
      await stack.close();
    });

    it('offers a payload over 64 KB as a download instead of rendering it', async () => {
      const owner = await stack.newProject('ui-payloads');
      const code = await stack.request(
        'POST',
        `/2/projects/${owner.id}/codes`,
        { name: 'hello', image: TEST_IMAGE },
        owner.token,
      );
      expect(code.status).toBe(200);
      const big = JSON.stringify({ blob: 'x'.repeat(70 * 1024) });
      const queued = await stack.request(
        'POST',
        `/2/projects/${owner.id}/tasks`,
        { tasks: [{ code_name: 'hello', payload: big }] },
        owner.token,
      );
      expect(queued.status).toBe(200);
      const id = queued.body.tasks[0].id as string;
      const page = await signedIn(owner.token, stack.url);
      await page.goto(`${stack.url}/ui/p/${owner.id}/tasks/${id}`);
      await page.getByRole('link', { name: 'Download the payload' }).waitFor();
      expect(await page.locator('pre.payload').count()).toBe(0);
      expect(await page.locator('#rerun-payload').count()).toBe(0);
      const download = page.waitForEvent('download');
      await page.getByRole('link', { name: 'Download the payload' }).click();
      const file = await (await download).path();
      expect(readFileSync(file, 'utf8')).toBe(big);
    });
  });
});
