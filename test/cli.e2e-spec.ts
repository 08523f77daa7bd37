import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { e2e, newProject, TestProject } from './support/kiln';
import { ROOT } from './support/processes';

/** The built `kiln` binary, as `npm link` (or `npx kiln`) runs it. */
const BIN = join(ROOT, 'dist/apps/cli/src/main.js');

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
  /** When each piece of stdout arrived (ms since the start), and the exit. */
  pieces: { at: number; text: string }[];
  exitAt: number;
}

/** Runs `kiln ARGS` in `cwd` with only `env` (plus PATH) set. */
function kiln(args: string[], env: Record<string, string> = {}, cwd?: string): Promise<Outcome> {
  const started = Date.now();
  const child = spawn(BIN, args, {
    cwd: cwd ?? mkdtempSync(join(tmpdir(), 'kiln-cli-cwd-')),
    env: {
      PATH: process.env.PATH!,
      HOME: home,
      KILN_CONFIG_FILE: join(home, 'config.json'),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const outcome: Outcome = { code: null, stdout: '', stderr: '', pieces: [], exitAt: 0 };
  child.stdout.on('data', (data: Buffer) => {
    outcome.stdout += data.toString();
    outcome.pieces.push({ at: Date.now() - started, text: data.toString() });
  });
  child.stderr.on('data', (data: Buffer) => (outcome.stderr += data.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      outcome.code = code;
      outcome.exitAt = Date.now() - started;
      resolve(outcome);
    });
  });
}

let home: string;

describe('the kiln CLI (the built binary)', () => {
  let project: TestProject;
  let env: Record<string, string>;

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'kiln-cli-home-'));
    project = await newProject('cli');
    env = { KILN_URL: e2e().url, KILN_PROJECT_ID: project.projectId, KILN_TOKEN: project.token };
    const registered = await kiln(['register', 'kiln-test/busybox:latest', '--name', 'hello'], env);
    expect(registered).toMatchObject({ code: 0, stderr: '' });
    expect(registered.stdout).toMatch(/^Registered hello \(code [0-9a-f]{24}\)\n$/);
  });

  it(`queue hello --payload '{"a":1}' --wait prints the task's output and exits 0`, async () => {
    const run = await kiln(['queue', 'hello', '--payload', '{"a":1}', '--wait'], env);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('{"a":1}\n');
    expect(run.stderr).toMatch(/^task [0-9a-f]{24} queued\n$/);
  });

  it('queue --wait streams the output live, as the task prints it', async () => {
    const run = await kiln(
      ['queue', 'hello', '--payload', '{"a":1,"lines":3,"interval":1}', '--wait'],
      env,
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('{"a":1,"lines":3,"interval":1}\nline 1\nline 2\nline 3\n');
    const first = run.pieces.find((piece) => piece.text.includes('line 1'))!;
    expect(run.exitAt - first.at).toBeGreaterThan(1500); // line 1 came ~2 s before the end
  });

  it('queue --wait exits non-zero for a failing task, saying why', async () => {
    const run = await kiln(['queue', 'hello', '--payload', '{"exit":3}', '--wait'], env);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('{"exit":3}\n');
    expect(run.stderr).toMatch(/task [0-9a-f]{24} error: exit code 3\n$/);
  });

  it('log -f follows a running task; log prints it afterwards', async () => {
    const queued = await kiln(['queue', 'hello', '--payload', '{"lines":3,"interval":0.7}'], env);
    expect(queued.code).toBe(0);
    const id = queued.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{24}$/);
    const followed = await kiln(['log', '-f', id], env);
    expect(followed.code).toBe(0);
    expect(followed.stdout).toBe('{"lines":3,"interval":0.7}\nline 1\nline 2\nline 3\n');
    expect(followed.pieces.length).toBeGreaterThan(1); // it arrived in pieces, not at the end
    const printed = await kiln(['log', id], env);
    expect(printed).toMatchObject({ code: 0, stdout: followed.stdout });
  });

  it('--json output parses, for every read command', async () => {
    const queued = await kiln(
      ['queue', 'hello', '--payload', '{"j":1}', '--label', 'json', '--json'],
      env,
    );
    const { tasks } = JSON.parse(queued.stdout);
    const id = tasks[0].id as string;
    const waited = await kiln(['log', '-f', id, '--json'], env);
    expect(JSON.parse(waited.stdout)).toEqual({ id, status: 'complete', log: '{"j":1}\n' });
    expect(JSON.parse((await kiln(['status', id, '--json'], env)).stdout)).toMatchObject({
      id,
      status: 'complete',
      label: 'json',
    });
    const listed = JSON.parse((await kiln(['tasks', '--label', 'json', '--json'], env)).stdout);
    expect(listed.map((t: { id: string }) => t.id)).toEqual([id]);
    expect(JSON.parse((await kiln(['log', id, '--json'], env)).stdout)).toEqual({
      id,
      log: '{"j":1}\n',
    });
    expect(JSON.parse((await kiln(['schedules', '--json'], env)).stdout)).toEqual(
      expect.any(Array),
    );
  });

  it('tasks shows a table filtered by status and code; status, cancel and retry', async () => {
    const queued = await kiln(
      ['queue', 'hello', '--payload', '{"sleep":60}', '--label', 'slow'],
      env,
    );
    const id = queued.stdout.trim();
    const cancelled = await kiln(['cancel', id], env);
    expect(cancelled).toMatchObject({ code: 0, stdout: `Cancelled ${id}\n` });
    const table = await kiln(['tasks', '--status', 'cancelled', '--code', 'hello'], env);
    expect(table.code).toBe(0);
    const [header, ...rows] = table.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+CODE\s+STATUS\s+CREATED\s+DURATION\s+MSG$/);
    expect(rows.some((row) => row.startsWith(id) && /\bcancelled\b/.test(row))).toBe(true);
    expect(table.stdout).not.toContain('\u001b['); // no colour when not on a terminal
    const status = await kiln(['status', id], env);
    expect(status.stdout).toMatch(
      /^id\s+[0-9a-f]{24}\ncode\s+hello \(rev 1\)\nstatus\s+cancelled\n/,
    );
    const retried = await kiln(['retry', id, '--delay', '3600'], env);
    const again = retried.stdout.trim();
    expect(again).toMatch(/^[0-9a-f]{24}$/);
    expect(JSON.parse((await kiln(['status', again, '--json'], env)).stdout)).toMatchObject({
      original_task_id: id,
      status: 'queued',
    });
    await kiln(['cancel', again], env);
  });

  it('schedule (cron + tz, or run-every), schedules and unschedule', async () => {
    const cron = await kiln(
      [
        'schedule',
        'hello',
        '--cron',
        '0 9 * * 1-5',
        '--tz',
        'Europe/Paris',
        '--payload',
        '{"s":1}',
      ],
      env,
    );
    expect(cron.code).toBe(0);
    const id = cron.stdout.trim();
    const every = await kiln(['schedule', 'hello', '--run-every', '3600', '--run-times', '2'], env);
    const everyId = every.stdout.trim();
    const table = await kiln(['schedules'], env);
    expect(table.stdout).toMatch(
      new RegExp(`${id}\\s+hello\\s+scheduled\\s+cron 0 9 \\* \\* 1-5 Europe/Paris`),
    );
    expect(table.stdout).toMatch(new RegExp(`${everyId}\\s+hello\\s+scheduled\\s+every 3600s`));
    expect(await kiln(['unschedule', id], env)).toMatchObject({
      code: 0,
      stdout: `Cancelled schedule ${id}\n`,
    });
    await kiln(['unschedule', everyId], env);
    const both = await kiln(['schedule', 'hello', '--run-every', '60', '--cron', '* * * * *'], env);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/exactly one of --run-every S and --cron EXPR/);
  });

  it('a wrong token prints one line and exits non-zero', async () => {
    const run = await kiln(['tasks', '--token', 'wrong-token'], env);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.split('\n')).toHaveLength(2); // one line and its newline
    expect(run.stderr).toMatch(/^kiln: 401 .*token/);
  });

  it('settings: flags > KILN_* / IRON_* env > iron.json > saved login', async () => {
    const own = { KILN_CONFIG_FILE: join(home, 'precedence.json') };
    const login = await kiln(
      ['login', '--url', e2e().url, '--project-id', project.projectId, '--token', project.token],
      own,
    );
    expect(login.code).toBe(0);
    expect(login.stdout).toContain('precedence.json');
    const dir = mkdtempSync(join(tmpdir(), 'kiln-cli-iron-'));
    expect((await kiln(['tasks', '--json'], own, dir)).code).toBe(0); // the saved login alone
    writeFileSync(
      join(dir, 'iron.json'),
      JSON.stringify({ project_id: project.projectId, token: 'iron-json-wrong' }),
    );
    expect((await kiln(['tasks'], own, dir)).stderr).toMatch(/^kiln: 401/); // iron.json beats the login
    expect((await kiln(['tasks'], { ...own, IRON_TOKEN: project.token }, dir)).code).toBe(0); // env beats iron.json
    const flagged = await kiln(
      ['tasks', '--token', 'flag-wrong'],
      { ...own, KILN_TOKEN: project.token },
      dir,
    );
    expect(flagged.stderr).toMatch(/^kiln: 401/); // the flag beats the environment
  });

  it('--help everywhere, with examples; a bad flag is a usage error', async () => {
    const top = await kiln(['--help']);
    expect(top.code).toBe(0);
    const commands = [...top.stdout.matchAll(/^ {2}([a-z]+) {2,}/gm)].map((m) => m[1]);
    expect(commands).toEqual(
      expect.arrayContaining([
        'login',
        'register',
        'upload',
        'queue',
        'tasks',
        'status',
        'log',
        'cancel',
        'retry',
        'schedule',
        'schedules',
        'unschedule',
        'webhooks',
      ]),
    );
    for (const command of commands) {
      const help = await kiln([command, '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: kiln ${command}`));
      expect(help.stdout).toContain('Examples:');
    }
    const bad = await kiln(['queue', 'hello', '--bogus'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--bogus.*see kiln queue --help/);
  });

  describe('webhooks and upload (pinned contracts, against a loopback stand-in)', () => {
    let server: Server;
    let url: string;
    const seen: { method: string; url: string; body: string; type?: string }[] = [];
    const hook = {
      id: 'a'.repeat(24),
      url: 'http://127.0.0.1:9/hook',
      events: ['task.error', 'task.timeout'],
      code_name: null,
      enabled: true,
      disabled_reason: null,
      description: '',
      secret: 'whsec_test',
    };

    beforeAll(async () => {
      server = createServer((req, res) => {
        const parts: Buffer[] = [];
        req.on('data', (part: Buffer) => parts.push(part));
        req.on('end', () => {
          const body = Buffer.concat(parts);
          seen.push({
            method: req.method!,
            url: req.url!,
            body: body.length > 1000 ? `${body.length} bytes` : body.toString(),
            type: req.headers['content-type'],
          });
          res.setHeader('content-type', 'application/json');
          if (req.url!.endsWith('/image'))
            return res.end(
              JSON.stringify({
                id: 'c'.repeat(24),
                msg: 'Upload successful.',
                rev: 2,
                image: '127.0.0.1:5000/kiln/p/app@sha256:abc',
              }),
            );
          if (req.method === 'GET') return res.end(JSON.stringify({ webhooks: [hook] }));
          if (req.method === 'DELETE') return res.end('{"msg":"Deleted"}');
          res.end(JSON.stringify(hook));
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    it('webhooks add, list and rm', async () => {
      const standIn = { ...env, KILN_URL: url };
      const added = await kiln(
        ['webhooks', 'add', hook.url, '--events', 'task.error,task.timeout'],
        standIn,
      );
      expect(added).toMatchObject({ code: 0, stdout: `${hook.id}\nsecret whsec_test\n` });
      const listed = await kiln(['webhooks', 'list'], standIn);
      expect(listed.stdout).toMatch(
        new RegExp(
          `^ID\\s+STATE\\s+EVENTS\\s+CODE\\s+URL\\n${hook.id}\\s+on\\s+task.error,task.timeout\\s+\\*\\s+${hook.url}\\n$`,
        ),
      );
      expect(JSON.parse((await kiln(['webhooks', 'list', '--json'], standIn)).stdout)).toEqual([
        hook,
      ]);
      expect(await kiln(['webhooks', 'rm', hook.id], standIn)).toMatchObject({
        code: 0,
        stdout: `Deleted webhook ${hook.id}\n`,
      });
      const wrong = await kiln(['webhooks', 'add', hook.url, '--events', 'task.exploded'], standIn);
      expect(wrong.code).toBe(2);
      const base = `/2/projects/${project.projectId}/webhooks`;
      expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
        `POST ${base}`,
        `GET ${base}`,
        `GET ${base}`,
        `DELETE ${base}/${hook.id}`,
      ]);
      expect(JSON.parse(seen[0].body)).toEqual({
        url: hook.url,
        events: ['task.error', 'task.timeout'],
      });
    });

    it('upload TARBALL --name N streams the file', async () => {
      seen.length = 0;
      const tarball = join(mkdtempSync(join(tmpdir(), 'kiln-cli-tar-')), 'app.tar');
      writeFileSync(tarball, Buffer.alloc(200_000, 1));
      const run = await kiln(['upload', tarball, '--name', 'app'], { ...env, KILN_URL: url });
      expect(run).toMatchObject({
        code: 0,
        stdout: 'Uploaded app: revision 2, image 127.0.0.1:5000/kiln/p/app@sha256:abc\n',
      });
      expect(seen).toEqual([
        {
          method: 'POST',
          url: `/2/projects/${project.projectId}/codes/app/image`,
          body: '200000 bytes',
          type: 'application/x-tar',
        },
      ]);
      const missing = await kiln(['upload', tarball], { ...env, KILN_URL: url });
      expect(missing).toMatchObject({
        code: 2,
        stderr: expect.stringContaining('--name is required'),
      });
    });
  });
});
