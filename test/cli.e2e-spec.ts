import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipOf } from '../libs/images/src/zip.fixture';
import { buildTestImage, docker } from './support/images';
import { e2e, HEALTHY_ENDPOINT, newProject, TestProject, waitUntil } from './support/kiln';
import { ROOT } from './support/processes';
import { Receiver, validSignatures } from './support/receiver';

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

/** Runs `kiln ARGS` in `cwd` with only `env` (plus PATH) set, and `input` (if any) on stdin. */
function kiln(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
  input?: string,
): Promise<Outcome> {
  const started = Date.now();
  const child = spawn(BIN, args, {
    cwd: cwd ?? mkdtempSync(join(tmpdir(), 'kiln-cli-cwd-')),
    env: {
      PATH: process.env.PATH!,
      HOME: home,
      KILN_CONFIG_FILE: join(home, 'config.json'),
      ...env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.end(input); // nothing given: stdin is at its end at once
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
    expect(login).toMatchObject({ code: 0, stderr: '' });
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

  it('tokens create / list / revoke; a read token cannot queue', async () => {
    const created = await kiln(
      [
        'tokens',
        'create',
        '--name',
        'reader',
        '--role',
        'read',
        '--expires-at',
        '2099-01-01T00:00:00Z',
      ],
      env,
    );
    expect(created).toMatchObject({ code: 0, stderr: '' });
    const [, id, secret] = /^([0-9a-f]{24})\ntoken (kiln_\S+)\n$/.exec(created.stdout)!;
    const listed = await kiln(['tokens', 'list'], env);
    expect(listed.code).toBe(0);
    const [header, ...rows] = listed.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+NAME\s+ROLE\s+CREATED\s+LAST USED\s+EXPIRES$/);
    expect(rows).toHaveLength(2);
    expect(rows[1]).toMatch(
      new RegExp(`^${id}\\s+reader\\s+read\\s+\\S+ \\S+\\s+never\\s+2099-01-01 `),
    );
    expect(listed.stdout).not.toContain(secret);
    const json = JSON.parse((await kiln(['tokens', 'list', '--json'], env)).stdout);
    expect(json[1]).toEqual({
      id,
      name: 'reader',
      role: 'read',
      created_at: expect.any(String),
      last_used_at: null,
      expires_at: '2099-01-01T00:00:00.000Z',
    });
    const asReader = { ...env, KILN_TOKEN: secret };
    expect((await kiln(['tasks'], asReader)).code).toBe(0);
    const refused = await kiln(['queue', 'hello'], asReader);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^kiln: 403 .*role is read/);
    const badRole = await kiln(['tokens', 'create', '--role', 'owner'], env);
    expect(badRole.code).toBe(2);
    expect(badRole.stderr).toContain('--role wants one of read, queue, manage, got "owner"');
    const past = await kiln(['tokens', 'create', '--expires-at', '2001-01-01T00:00:00Z'], env);
    expect(past.code).toBe(1);
    expect(past.stderr).toMatch(/expires_at must be in the future/);
    expect(await kiln(['tokens', 'revoke', id], env)).toMatchObject({
      code: 0,
      stdout: `Revoked token ${id}\n`,
    });
    expect((await kiln(['tasks'], asReader)).stderr).toMatch(/^kiln: 401/);
    expect((await kiln(['tokens', 'revoke', id], env)).code).toBe(1);
    expect(JSON.parse((await kiln(['tokens', 'list', '--json'], env)).stdout)).toHaveLength(1);
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
        'drains',
        'credentials',
        'tokens',
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

  describe('upload, webhooks and credentials (the real API)', () => {
    const tag = `kiln-test8/cli-${randomBytes(3).toString('hex')}:a`;
    let dir: string;
    let tarball: string;
    let receiver: Receiver;
    const to = (path: string) => receiver.received.filter((r) => r.path === path);

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'kiln-cli-upload-'));
      buildTestImage(tag, 'cli');
      tarball = join(dir, 'app.tar');
      docker(['save', '-o', tarball, tag]);
      receiver = await new Receiver().start();
    }, 120_000);

    afterAll(async () => {
      await receiver.close();
      rmSync(dir, { recursive: true, force: true });
      try {
        docker(['rmi', tag]);
      } catch {
        // already gone
      }
    });

    it("upload TARBALL --name N, then queue N --wait prints the image's output", async () => {
      const uploaded = await kiln(['upload', tarball, '--name', 'app'], env);
      expect(uploaded).toMatchObject({ code: 0, stderr: '' }); // no progress bar off a terminal
      const registry = process.env.REGISTRY_URL!.replace(/\./g, '\\.');
      expect(uploaded.stdout).toMatch(
        new RegExp(
          `^Uploaded app: revision 1, image ${registry}/kiln/${project.projectId}/app@sha256:[0-9a-f]{64}\n$`,
        ),
      );
      const run = await kiln(['queue', 'app', '--payload', '{"u":1}', '--wait'], env);
      expect(run).toMatchObject({ code: 0, stdout: 'variant=cli\n{"u":1}' });

      const again = await kiln(['upload', tarball, '--name', 'app', '--json'], env);
      expect(JSON.parse(again.stdout)).toMatchObject({ msg: 'Upload successful.', rev: 2 });

      writeFileSync(join(dir, 'notes.txt'), 'not a tarball\n');
      const refused = await kiln(['upload', join(dir, 'notes.txt'), '--name', 'app'], env);
      expect(refused.code).toBe(1);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toMatch(/^kiln: 400 not a tar archive[^\n]*\n$/);
      const missing = await kiln(['upload', tarball], env);
      expect(missing).toMatchObject({
        code: 2,
        stderr: expect.stringContaining('--name is required'),
      });
    });

    it('upload ZIP --stack S --command C, then queue --wait runs the zip', async () => {
      const zip = join(dir, 'hello.zip');
      writeFileSync(
        zip,
        zipOf([{ name: 'hi.sh', content: 'echo "cli zip got $(cat "$PAYLOAD_FILE")"\n' }]),
      );
      const uploaded = await kiln(
        ['upload', zip, '--name', 'zipped', '--stack', 'busybox', '--command', 'sh hi.sh'],
        env,
      );
      expect(uploaded).toMatchObject({ code: 0, stderr: '' });
      expect(uploaded.stdout).toMatch(
        /^Uploaded zipped: revision 1, image kiln-test\/busybox:latest, zip sha256:[0-9a-f]{64}\n$/,
      );
      const run = await kiln(['queue', 'zipped', '--payload', '{"p":1}', '--wait'], env);
      expect(run).toMatchObject({ code: 0, stdout: 'cli zip got {"p":1}\n' });
    });

    it('upload shows a progress bar when stderr is a terminal', async () => {
      // `script` gives the command a pseudo-terminal; its output is the terminal's.
      const line = [BIN, 'upload', tarball, '--name', 'app-tty'].map((arg) => `'${arg}'`).join(' ');
      const run = await new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn('script', ['-qfec', line, '/dev/null'], {
          env: { PATH: process.env.PATH!, HOME: home, TERM: 'dumb', ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        child.stdout.on('data', (data: Buffer) => (output += data.toString()));
        child.on('close', (code) => resolve({ code, output }));
      });
      expect(run.code).toBe(0);
      expect(run.output).toMatch(/\[#{30}\] 100% {2}\d+\.\d MiB \/ \d+\.\d MiB/);
      expect(run.output).toMatch(/Uploaded app-tty: revision 1/);
    });

    it('webhooks add / list / deliveries / redeliver / rotate / rm against the real API', async () => {
      const added = await kiln(
        [
          'webhooks',
          'add',
          receiver.url('/cli'),
          '--events',
          'task.complete,task.error',
          '--code',
          'hello',
        ],
        env,
      );
      expect(added.code).toBe(0);
      const [, id, secret] = /^([0-9a-f]{24})\nsecret (whsec_\S+)\n$/.exec(added.stdout)!;

      const table = await kiln(['webhooks', 'list'], env);
      expect(table.stdout).toBe(
        `ID${' '.repeat(24)}STATE  PENDING  EVENTS${' '.repeat(20)}CODE   URL\n` +
          `${id}  on     0        task.complete,task.error  hello  ${receiver.url('/cli')}\n`,
      );
      expect(JSON.parse((await kiln(['webhooks', 'list', '--json'], env)).stdout)).toEqual([
        {
          id,
          url: receiver.url('/cli'),
          events: ['task.complete', 'task.error'],
          code_name: 'hello',
          enabled: true,
          disabled_reason: null,
          description: '',
          created_at: expect.any(String),
          updated_at: expect.any(String),
          ...HEALTHY_ENDPOINT,
        },
      ]);

      const run = await kiln(['queue', 'hello', '--payload', '{"exit":2}', '--wait'], env);
      expect(run.code).toBe(1);
      const taskId = /task ([0-9a-f]{24}) queued/.exec(run.stderr)![1];
      await receiver.waitFor(() => to('/cli').length >= 1);
      const [got] = to('/cli');
      expect(validSignatures(got, secret)).toBe(1);
      expect(got.json).toMatchObject({ type: 'task.error', data: { task_id: taskId } });

      let deliveries: { id: string; state: string }[] = [];
      await waitUntil('the delivery made', async () => {
        deliveries = JSON.parse((await kiln(['webhooks', 'deliveries', id, '--json'], env)).stdout);
        return deliveries[0]?.state === 'delivered';
      });
      expect(deliveries).toMatchObject([
        { event_type: 'task.error', task_id: taskId, status_code: 200, attempt: 1 },
      ]);
      const shown = await kiln(['webhooks', 'deliveries', id], env);
      expect(shown.stdout).toMatch(
        new RegExp(
          `^ID\\s+EVENT\\s+TASK\\s+STATE\\s+TRIES\\s+STATUS\\s+CREATED\\s+ERROR\\n${deliveries[0].id}\\s+task\\.error\\s+${taskId}\\s+delivered\\s+1\\s+200\\s+\\S+ \\S+\\n$`,
        ),
      );

      const rotated = await kiln(['webhooks', 'rotate', id], env);
      const newSecret = /^secret (whsec_\S+)\n$/.exec(rotated.stdout)![1];
      expect(newSecret).not.toBe(secret);
      expect(await kiln(['webhooks', 'redeliver', id, deliveries[0].id], env)).toMatchObject({
        code: 0,
        stdout: 'Redelivery queued.\n',
      });
      await receiver.waitFor(() => to('/cli').length >= 2);
      const again = to('/cli')[1];
      expect(again.headers['webhook-id']).toBe(got.headers['webhook-id']);
      expect(validSignatures(again, newSecret)).toBe(1);

      expect(await kiln(['webhooks', 'rm', id], env)).toMatchObject({
        code: 0,
        stdout: `Deleted webhook ${id}\n`,
      });
      expect(JSON.parse((await kiln(['webhooks', 'list', '--json'], env)).stdout)).toEqual([]);
      const gone = await kiln(['webhooks', 'rm', id], env);
      expect(gone).toMatchObject({ code: 1, stderr: 'kiln: 404 Webhook not found\n' });

      const wrong = await kiln(
        ['webhooks', 'add', receiver.url(), '--events', 'task.exploded'],
        env,
      );
      expect(wrong.code).toBe(2);
      expect(wrong.stderr).toMatch(/unknown event task\.exploded/);
      const refused = await kiln(['webhooks', 'add', 'http://10.0.0.1/hook'], env);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^kiln: 400 .*private/);
      expect((await kiln(['webhooks', 'redeliver', id], env)).stderr).toMatch(
        /webhooks redeliver needs DELIVERY/,
      );
    });

    it('drains add / list / rm against the real API', async () => {
      // Loopback ports nothing listens on (allow-listed on this stack): nothing leaves the host.
      const https = `https://127.0.0.1:${receiver.port}/drain`;
      const syslog = `syslog+tcp://127.0.0.1:${receiver.port}`;
      const added = await kiln(['drains', 'add', https, '--code', 'hello'], env);
      expect(added.code).toBe(0);
      const [, id, secret] = /^([0-9a-f]{24})\nsecret (whsec_\S+)\n$/.exec(added.stdout)!;
      expect(secret).toBeTruthy();
      const plain = await kiln(['drains', 'add', syslog, '--json'], env);
      expect(plain.code).toBe(0);
      const made = JSON.parse(plain.stdout);
      expect(made).toMatchObject({ url: syslog, code_name: null, delivered_lines: 0 });
      expect(made.secret).toBeUndefined();

      const listed = JSON.parse((await kiln(['drains', 'list', '--json'], env)).stdout);
      expect(listed.map((d: { id: string }) => d.id)).toEqual([id, made.id]);
      expect(listed[0]).toMatchObject({ url: https, code_name: 'hello', dropped_lines: 0 });
      const table = await kiln(['drains', 'list'], env);
      expect(table.stdout).toMatch(/^ID\s+STATE\s+DELIVERED\s+DROPPED\s+CODE\s+URL\n/);
      expect(table.stdout).toContain(`${id}  `);
      expect(table.stdout).toContain(`hello  ${https}\n`);

      for (const drain of [id, made.id]) {
        expect(await kiln(['drains', 'rm', drain], env)).toMatchObject({
          code: 0,
          stdout: `Deleted log drain ${drain}\n`,
        });
      }
      expect(JSON.parse((await kiln(['drains', 'list', '--json'], env)).stdout)).toEqual([]);
      expect(await kiln(['drains', 'rm', id], env)).toMatchObject({
        code: 1,
        stderr: 'kiln: 404 Log drain not found\n',
      });
      const refused = await kiln(['drains', 'add', 'syslog+tcp://10.0.0.1:514'], env);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^kiln: 400 .*private/);
      const usage = await kiln(['drains', 'drop'], env);
      expect(usage.code).toBe(2);
      expect(usage.stderr).toMatch(/drains wants add, list or rm, not "drop"/);
    });

    it('queue --webhook URL --wait: the URL is called when the task ends, signed with the task secret', async () => {
      const run = await kiln(
        ['queue', 'hello', '--payload', '{"w":1}', '--webhook', receiver.url('/own'), '--wait'],
        env,
      );
      expect(run).toMatchObject({ code: 0, stdout: '{"w":1}\n' });
      await receiver.waitFor(() => to('/own').length >= 1);
      const secret = await kiln(['webhooks', 'task-secret'], env);
      expect(secret.stdout).toMatch(/^whsec_\S+\n$/);
      const [got] = to('/own');
      expect(validSignatures(got, secret.stdout.trim())).toBe(1);
      expect(got.json).toMatchObject({ type: 'task.complete', data: { status: 'complete' } });
    });

    it('credentials add (password on stdin) / list / rm', async () => {
      const added = await kiln(
        ['credentials', 'add', 'https://127.0.0.1:5999/', '-u', 'ci', '--password-stdin'],
        env,
        undefined,
        'secret-password\n',
      );
      expect(added).toMatchObject({ code: 0, stdout: 'Credentials added.\n' });
      const listed = await kiln(['credentials', 'list'], env);
      expect(listed.stdout).toMatch(
        /^SERVER\s+USERNAME\s+UPDATED\n127\.0\.0\.1:5999\s+ci\s+\S+ \S+\n$/,
      );
      const json = JSON.parse((await kiln(['credentials', 'list', '--json'], env)).stdout);
      expect(json).toEqual([
        {
          serveraddress: '127.0.0.1:5999',
          username: 'ci',
          created_at: expect.any(String),
          updated_at: expect.any(String),
        },
      ]);
      const both = await kiln(
        ['credentials', 'add', '127.0.0.1:5999', '-u', 'ci', '-p', 'x', '--password-stdin'],
        env,
      );
      expect(both.code).toBe(2);
      expect(await kiln(['credentials', 'rm', '127.0.0.1:5999'], env)).toMatchObject({
        code: 0,
        stdout: 'Deleted the login for 127.0.0.1:5999\n',
      });
      expect((await kiln(['credentials', 'rm', '127.0.0.1:5999'], env)).code).toBe(1);
      expect(JSON.parse((await kiln(['credentials', 'list', '--json'], env)).stdout)).toEqual([]);
    });
  });
});
