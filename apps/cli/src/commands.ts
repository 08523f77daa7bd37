import { readFileSync } from 'node:fs';
import type { ParseArgsConfig } from 'node:util';
import {
  Kiln,
  KilnError,
  KilnTimeoutError,
  HotSettings,
  InvokeOptions,
  LIMITS,
  Task,
  TaskOptions,
  TaskSelection,
  TaskStatus,
  TOKEN_ROLES,
  TokenRole,
  WEBHOOK_EVENTS,
  WebhookDelivery,
  WebhookEvent,
  configFile,
  isFinalStatus,
  saveSettings,
} from '@kiln/client';
import {
  Colours,
  EXIT_CODES,
  duration,
  paintStatus,
  progressBar,
  shortTime,
  table,
} from './format';

type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | string[] | undefined>;

/** What a command gets: its parsed flags and positionals, and where to write. */
export interface Context {
  values: Values;
  positionals: string[];
  out: (text: string) => void;
  err: (text: string) => void;
  /** Colours for stdout, and for stderr (each only on a terminal). */
  c: Colours;
  cErr: Colours;
  stderrTty: boolean;
  /** A client with the settings of flags, then KILN_ and IRON_ variables, iron.json, saved config. */
  kiln: () => Kiln;
}

export interface Command {
  name: string;
  args: string;
  summary: string;
  /** More lines of help: what it does, its flags. */
  details: string;
  examples: string[];
  options: Options;
  /** Resolves to the exit code. */
  run: (ctx: Context) => Promise<number>;
}

/** Thrown for a wrong command line: printed with a hint to `--help`, exit code 2. */
export class UsageError extends Error {}

/**
 * The whole numbers each integer flag takes: the range the API gives the field it sets
 * (`LIMITS`, which the server's specs read too), so that a bad value is a usage error here, not a
 * request. `count` and `limit` are the CLI's own.
 */
export const INT_FLAGS: Readonly<Record<string, readonly [min: number, max: number]>> = {
  'max-concurrency': LIMITS.maxConcurrency,
  retries: LIMITS.retries,
  'retries-delay': LIMITS.retriesDelay,
  'default-priority': LIMITS.priority,
  priority: LIMITS.priority,
  timeout: LIMITS.timeout,
  delay: LIMITS.delay,
  count: [1, 1000],
  limit: [1, 100_000],
  'run-every': LIMITS.runEvery,
  'run-times': LIMITS.runTimes,
  wait: LIMITS.invokeWait,
  'hot-idle-timeout': LIMITS.hotIdleTimeout,
  'hot-max-tasks': LIMITS.hotMaxTasks,
  'hot-max-containers': LIMITS.hotMaxContainers,
};

/** What `kiln invoke` exits with when its wait passed before the task ended (EX_TEMPFAIL). */
export const INVOKE_WAIT_PASSED = 75;

const TASK_FLAGS: Options = {
  payload: { type: 'string' },
  'payload-file': { type: 'string' },
  priority: { type: 'string' },
  timeout: { type: 'string' },
  cluster: { type: 'string' },
  label: { type: 'string' },
};
const TASK_FLAGS_HELP = `  --payload JSON         the payload (default {}); --payload-file F reads it from a file ("-" = stdin)
  --priority 0|1|2       higher runs first when workers are busy
  --timeout S            seconds before the task is killed (default 3600)
  --cluster NAME         run on workers of this cluster
  --label TEXT           a label to filter tasks by`;

/** The filter flags of `cancel` and `retry` (those of `tasks`). */
const SELECTION_FLAGS = `  ID...                  the tasks (several at once: one request per 1000)
  --code C, --status S,S, --label L
                         instead of ids: every task matching (all given must match)`;

const SELECTION_OPTIONS = {
  status: { type: 'string' },
  code: { type: 'string' },
  label: { type: 'string' },
} as const;

export const COMMANDS: Command[] = [
  {
    name: 'login',
    args: '[--url URL] [--project-id ID] [--token TOKEN]',
    summary: 'save the API URL, project and token for later commands',
    details: `Saves to ${'$KILN_CONFIG_FILE'} or ~/.config/kiln/config.json (mode 0600), after checking them
against the API. Settings not given as flags are taken from KILN_*/IRON_* variables or iron.json.`,
    examples: ['kiln login --url http://127.0.0.1:8080 --project-id 0123… --token abc…'],
    options: {},
    run: async (ctx) => {
      const kiln = ctx.kiln();
      await kiln.codes.list().next(); // proves URL, project and token
      const file = configFile();
      saveSettings(file, kiln.settings);
      if (ctx.values.json) {
        ctx.out(json({ file, url: kiln.settings.url, project_id: kiln.settings.projectId }));
      } else {
        ctx.out(`Saved ${kiln.settings.url}, project ${kiln.settings.projectId} to ${file}\n`);
      }
      return 0;
    },
  },
  {
    name: 'register',
    args: 'IMAGE [--name NAME] [options]',
    summary: 'register a Docker image as a code (a new revision if the name exists)',
    details: `  --name NAME            code name (default: the image's last path component, without tag)
  --command CMD          command to run instead of the image's
  --config TEXT          written to CONFIG_FILE in the container; --config-file F reads it
  -e, --env K=V          environment variable (repeatable)
  --max-concurrency N    tasks of this code running at once
  --retries N            automatic retries of a failed task (0-10)
  --retries-delay S      seconds before a retry
  --default-priority P   priority of tasks queued without one
  --cpus N               CPUs its tasks may use, e.g. 0.5 (default and maximum: the server's)
  --memory MB            memory limit of its tasks (default and maximum: the server's)
  --hot                  warm containers that take task after task (docs/hot.md); each of
                         --hot-idle-timeout S, --hot-max-tasks N, --hot-max-containers N
                         sets one of its settings (and turns hot on)`,
    examples: [
      'kiln register kiln-test/busybox:latest --name hello',
      'kiln register repo/app:1.2 -e MODE=prod --retries 2',
      'kiln register kiln-test/node-hot:latest --name fast --hot --hot-max-containers 4',
    ],
    options: {
      name: { type: 'string' },
      command: { type: 'string' },
      config: { type: 'string' },
      'config-file': { type: 'string' },
      env: { type: 'string', short: 'e', multiple: true },
      'max-concurrency': { type: 'string' },
      retries: { type: 'string' },
      'retries-delay': { type: 'string' },
      'default-priority': { type: 'string' },
      cpus: { type: 'string' },
      memory: { type: 'string' },
      hot: { type: 'boolean' },
      'hot-idle-timeout': { type: 'string' },
      'hot-max-tasks': { type: 'string' },
      'hot-max-containers': { type: 'string' },
    },
    run: async (ctx) => {
      const image = one(ctx, 'IMAGE');
      const name =
        str(ctx, 'name') ??
        image
          .replace(/[@:][^/]*$/, '')
          .split('/')
          .pop()!;
      const envVars: Record<string, string> = {};
      for (const pair of (ctx.values.env as string[] | undefined) ?? []) {
        const eq = pair.indexOf('=');
        if (eq <= 0) throw new UsageError(`-e wants NAME=VALUE, got "${pair}"`);
        envVars[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
      const configText = str(ctx, 'config-file')
        ? readInput(str(ctx, 'config-file')!)
        : str(ctx, 'config');
      const answer = await ctx.kiln().codes.register({
        name,
        image,
        command: str(ctx, 'command'),
        config: configText,
        envVars: Object.keys(envVars).length > 0 ? envVars : undefined,
        maxConcurrency: int(ctx, 'max-concurrency'),
        retries: int(ctx, 'retries'),
        retriesDelay: int(ctx, 'retries-delay'),
        defaultPriority: priority(ctx, 'default-priority'),
        cpus: positive(ctx, 'cpus'),
        memory: positive(ctx, 'memory'),
        hot: hotFlags(ctx),
      });
      ctx.out(
        ctx.values.json ? json({ ...answer, name }) : `Registered ${name} (code ${answer.id})\n`,
      );
      return 0;
    },
  },
  {
    name: 'upload',
    args: 'FILE --name NAME [--image IMAGE|--stack STACK] [--command CMD]',
    summary: 'upload a `docker save` tarball (plain or gzipped) or a zip code package as a code',
    details: `  --name NAME            the code (a new revision if it exists)
  --image IMAGE          a zip's image (a tarball brings its own)
  --stack STACK          a zip's stack when no --image (GET /2/stacks lists them);
                         default the server's first
  --command CMD          what a zip runs among its files, e.g. "node hello.js"
A zip (told by its first bytes) is unpacked into the task's directory before CMD runs.
Shows a progress bar on a terminal.`,
    examples: [
      'docker save my/app:1 | gzip > app.tar.gz && kiln upload app.tar.gz --name app',
      'zip -r hello.zip . && kiln upload hello.zip --name hello --stack node --command "node hello.js"',
    ],
    options: {
      name: { type: 'string' },
      image: { type: 'string' },
      stack: { type: 'string' },
      command: { type: 'string' },
    },
    run: async (ctx) => {
      const file = one(ctx, 'FILE');
      const name = str(ctx, 'name');
      if (!name) throw new UsageError('--name is required');
      let drawn = 0;
      const answer = await ctx.kiln().codes.upload(file, {
        name,
        image: str(ctx, 'image'),
        stack: str(ctx, 'stack'),
        command: str(ctx, 'command'),
        onProgress: ({ sent, total }) => {
          if (!ctx.stderrTty || (Date.now() - drawn < 100 && sent < total)) return;
          drawn = Date.now();
          ctx.err(`\r${progressBar(sent, total)}`);
        },
      });
      if (ctx.stderrTty) ctx.err('\n');
      ctx.out(
        ctx.values.json
          ? json(answer)
          : `Uploaded ${name}: revision ${answer.rev}, image ${answer.image}${answer.zip_digest ? `, zip ${answer.zip_digest}` : ''}\n`,
      );
      return 0;
    },
  },
  {
    name: 'queue',
    args: 'CODE [--payload JSON|--payload-file F] [options] [--wait]',
    summary: 'queue a task (or -n of them); --wait streams its log and exits with its outcome',
    details: `${TASK_FLAGS_HELP}
  --delay S              seconds before it may run
  --webhook URL          URL called once when the task ends (signed with the project's
                         task secret: kiln webhooks task-secret)
  -n, --count N          queue N identical tasks (1-1000)
  --wait                 stream the log live and exit with the task's outcome:
                         0 complete, 1 error, 124 timeout, 137 killed, 130 cancelled
                         (with -n: wait for all, no log; exit with the first failure's code)`,
    examples: [
      `kiln queue hello --payload '{"a":1}' --wait`,
      'kiln queue report --payload-file job.json --priority 2 --label nightly',
      `kiln queue hello -n 10 --delay 60`,
    ],
    options: {
      ...TASK_FLAGS,
      delay: { type: 'string' },
      webhook: { type: 'string' },
      count: { type: 'string', short: 'n' },
      wait: { type: 'boolean' },
    },
    run: async (ctx) => {
      const code = one(ctx, 'CODE');
      const count = int(ctx, 'count') ?? 1;
      const kiln = ctx.kiln();
      const options: TaskOptions = {
        ...taskOptions(ctx),
        delay: int(ctx, 'delay'),
        webhook: str(ctx, 'webhook'),
      };
      const payload = payloadOf(ctx);
      const queued = await kiln.tasks.createMany(
        Array.from({ length: count }, () => ({ ...options, codeName: code, payload })),
      );
      if (!ctx.values.wait) {
        ctx.out(
          ctx.values.json ? json({ tasks: queued }) : queued.map((t) => `${t.id}\n`).join(''),
        );
        return 0;
      }
      if (count === 1) {
        const [{ id }] = queued;
        if (!ctx.values.json) ctx.err(ctx.cErr.dim(`task ${id} queued\n`));
        return follow(ctx, kiln, id);
      }
      const tasks = await Promise.all(queued.map((t) => kiln.tasks.wait(t.id)));
      if (ctx.values.json) ctx.out(json({ tasks }));
      else for (const task of tasks) ctx.out(`${task.id}  ${paintStatus(task.status, ctx.c)}\n`);
      const failed = tasks.find((task) => task.status !== 'complete');
      return failed ? EXIT_CODES[failed.status as keyof typeof EXIT_CODES] : 0;
    },
  },
  {
    name: 'invoke',
    args: 'CODE [--payload JSON|--payload-file F] [--wait S] [options]',
    summary: 'run a task at the top priority, wait for it and print its output',
    details: `  --payload JSON         the payload (default {}); --payload-file F reads it from a file ("-" = stdin)
  --wait S               seconds Kiln waits for the task to end, 1-300 (default 30)
  --timeout S            seconds before the task is killed (default 3600)
  --cluster NAME         run on workers of this cluster
  --label TEXT           a label to filter tasks by
Prints the task's log (STDOUT and STDERR; the server caps it, 1 MiB by default) and exits with
the task's outcome: 0 complete, 1 error, 124 timeout, 137 killed, 130 cancelled; ${INVOKE_WAIT_PASSED} when
--wait passed first (the task goes on: its id is on stderr).`,
    examples: [
      `kiln invoke hello --payload '{"a":1}'`,
      'kiln invoke report --payload-file job.json --wait 120 --json',
    ],
    options: {
      payload: TASK_FLAGS.payload,
      'payload-file': TASK_FLAGS['payload-file'],
      timeout: TASK_FLAGS.timeout,
      cluster: TASK_FLAGS.cluster,
      label: TASK_FLAGS.label,
      wait: { type: 'string' },
    },
    run: async (ctx) => {
      const code = one(ctx, 'CODE');
      const options: InvokeOptions = {
        timeout: int(ctx, 'timeout'),
        cluster: str(ctx, 'cluster'),
        label: str(ctx, 'label'),
        wait: int(ctx, 'wait'),
      };
      const outcome = await ctx
        .kiln()
        .codes.invoke(code, payloadOf(ctx), options)
        .catch((error: unknown) => {
          // The wait passed: the task goes on, and the answer names it.
          if (error instanceof KilnTimeoutError && error.taskId) return error;
          throw error;
        });
      if (outcome instanceof KilnTimeoutError) {
        if (ctx.values.json) ctx.out(json({ id: outcome.taskId, msg: outcome.msg }));
        else ctx.err(`${outcome.msg}\n`);
        return INVOKE_WAIT_PASSED;
      }
      if (ctx.values.json) {
        ctx.out(json(outcome));
      } else {
        ctx.out(outcome.output);
        if (outcome.truncated) {
          ctx.err(ctx.cErr.dim(`(output truncated: kiln log ${outcome.id} prints it all)\n`));
        }
        if (outcome.status !== 'complete') {
          const why = outcome.msg ? `: ${outcome.msg}` : '';
          ctx.err(`${ctx.cErr.red(`task ${outcome.id} ${outcome.status}`)}${why}\n`);
        }
      }
      return EXIT_CODES[outcome.status];
    },
  },
  {
    name: 'tasks',
    args: '[--status S[,S…]] [--code NAME] [--label L] [--limit N]',
    summary: 'list tasks, newest first (a table; --json for scripts)',
    details: `  --status S,S           only these statuses (queued, preparing, running, complete, error,
                         cancelled, killed, timeout)
  --code NAME            only tasks of this code
  --label L              only tasks with this label
  --limit N              at most N tasks (default 30)`,
    examples: [
      'kiln tasks --status running,queued',
      'kiln tasks --code hello --json | jq -r ".[].id"',
    ],
    options: {
      status: { type: 'string' },
      code: { type: 'string' },
      label: { type: 'string' },
      limit: { type: 'string' },
    },
    run: async (ctx) => {
      const limit = int(ctx, 'limit') ?? 30;
      const statuses = (str(ctx, 'status') ?? '').split(',').filter(Boolean) as TaskStatus[];
      const tasks: Task[] = [];
      for await (const task of ctx.kiln().tasks.list({
        status: statuses,
        codeName: str(ctx, 'code'),
        label: str(ctx, 'label'),
        perPage: Math.min(100, Math.max(1, limit)),
      })) {
        if (tasks.length >= limit) break;
        tasks.push(task);
      }
      if (ctx.values.json) {
        ctx.out(json(tasks));
        return 0;
      }
      const rows = tasks.map((t) => [
        t.id,
        t.code_name,
        t.status,
        shortTime(t.created_at),
        duration(t.duration),
        t.msg,
      ]);
      ctx.out(
        table(
          ['ID', 'CODE', 'STATUS', 'CREATED', 'DURATION', 'MSG'],
          rows,
          (column, cell, padded) =>
            column === 2 ? padded.replace(cell, paintStatus(cell, ctx.c)) : padded,
        ),
      );
      return 0;
    },
  },
  {
    name: 'status',
    args: 'ID',
    summary: "show a task's status and details",
    details: '',
    examples: [
      'kiln status 6740c3b2e4b0a1b2c3d4e5f6',
      'kiln status 6740c3b2e4b0a1b2c3d4e5f6 --json',
    ],
    options: {},
    run: async (ctx) => {
      const task = await ctx.kiln().tasks.get(one(ctx, 'ID'));
      if (ctx.values.json) {
        ctx.out(json(task));
        return 0;
      }
      const fields: [string, string][] = [
        ['id', task.id],
        ['code', `${task.code_name} (rev ${task.code_rev})`],
        ['status', paintStatus(task.status, ctx.c)],
        ['msg', task.msg],
        ['priority', String(task.priority)],
        ['created', shortTime(task.created_at)],
        ['started', shortTime(task.start_time)],
        ['ended', shortTime(task.end_time)],
        ['duration', duration(task.duration)],
        ['progress', task.percent ? `${task.percent}%` : ''],
        ['label', task.label],
        ['retry of', task.original_task_id ?? ''],
        ['retried as', task.retry_task_id ?? ''],
      ];
      ctx.out(
        fields
          .filter(([, value]) => value !== '')
          .map(([k, v]) => `${k.padEnd(10)} ${v}\n`)
          .join(''),
      );
      return 0;
    },
  },
  {
    name: 'log',
    args: 'ID [-f]',
    summary: "print a task's log; -f follows it live until the task ends",
    details: `  -f, --follow           keep printing as the task prints, exit with its outcome
                         (0 complete, 1 error, 124 timeout, 137 killed, 130 cancelled)`,
    examples: ['kiln log 6740c3b2e4b0a1b2c3d4e5f6', 'kiln log -f 6740c3b2e4b0a1b2c3d4e5f6'],
    options: { follow: { type: 'boolean', short: 'f' } },
    run: async (ctx) => {
      const id = one(ctx, 'ID');
      const kiln = ctx.kiln();
      if (ctx.values.follow) return follow(ctx, kiln, id);
      const log = await kiln.tasks.log(id);
      ctx.out(ctx.values.json ? json({ id, log }) : log);
      return 0;
    },
  },
  {
    name: 'cancel',
    args: 'ID... | --code C [--status S,S] [--label L]',
    summary: 'cancel queued or running tasks: by id, or every task matching the filters',
    details: SELECTION_FLAGS,
    examples: ['kiln cancel 6740c3b2e4b0a1b2c3d4e5f6', 'kiln cancel --code resize --status queued'],
    options: SELECTION_OPTIONS,
    run: async (ctx) => {
      const selection = taskSelection(ctx);
      if ('id' in selection) {
        const answer = await ctx.kiln().tasks.cancel(selection.id);
        ctx.out(
          ctx.values.json ? json({ id: selection.id, ...answer }) : `Cancelled ${selection.id}\n`,
        );
        return 0;
      }
      const result = await ctx.kiln().tasks.cancelMany(selection);
      ctx.out(
        ctx.values.json ? json(result) : `Cancelled ${result.cancelled}${notFound(result)}\n`,
      );
      return 0;
    },
  },
  {
    name: 'retry',
    args: 'ID... | --code C [--status S,S] [--label L]  [--delay S]',
    summary: 'queue new tasks that run these again (by filter: ended ones not yet retried)',
    details: `${SELECTION_FLAGS}
  --delay S              seconds before they may run`,
    examples: ['kiln retry 6740c3b2e4b0a1b2c3d4e5f6', 'kiln retry --code resize --status error'],
    options: { ...SELECTION_OPTIONS, delay: { type: 'string' } },
    run: async (ctx) => {
      const selection = taskSelection(ctx);
      const delay = int(ctx, 'delay');
      if ('id' in selection) {
        const task = await ctx.kiln().tasks.retry(selection.id, { delay });
        ctx.out(ctx.values.json ? json(task) : `${task.id}\n`);
        return 0;
      }
      const result = await ctx.kiln().tasks.retryMany(selection, { delay });
      ctx.out(ctx.values.json ? json(result) : result.tasks.map((task) => `${task.id}\n`).join(''));
      return 0;
    },
  },
  {
    name: 'schedule',
    args: 'CODE (--run-every S | --cron EXPR [--tz ZONE]) [options]',
    summary: 'run a code on a schedule',
    details: `  --run-every S          every S seconds (≥ 60)
  --cron EXPR            a cron expression (5 fields), in --tz ZONE (IANA, default UTC)
  --start-at TIME        first run (RFC 3339; default now); --end-at TIME: none after
  --run-times N          stop after N runs
${TASK_FLAGS_HELP}`,
    examples: [
      `kiln schedule report --cron '0 9 * * 1-5' --tz Europe/Paris --payload '{"kind":"daily"}'`,
      'kiln schedule ping --run-every 300 --run-times 10',
    ],
    options: {
      ...TASK_FLAGS,
      'run-every': { type: 'string' },
      cron: { type: 'string' },
      tz: { type: 'string' },
      'start-at': { type: 'string' },
      'end-at': { type: 'string' },
      'run-times': { type: 'string' },
    },
    run: async (ctx) => {
      const code = one(ctx, 'CODE');
      const runEvery = int(ctx, 'run-every');
      const cron = str(ctx, 'cron');
      if ((runEvery === undefined) === (cron === undefined)) {
        throw new UsageError('give exactly one of --run-every S and --cron EXPR');
      }
      const { id } = await ctx.kiln().schedules.create(code, payloadOf(ctx), {
        ...taskOptions(ctx),
        runEvery,
        cron,
        timezone: str(ctx, 'tz'),
        startAt: str(ctx, 'start-at'),
        endAt: str(ctx, 'end-at'),
        runTimes: int(ctx, 'run-times'),
      });
      ctx.out(ctx.values.json ? json({ id }) : `${id}\n`);
      return 0;
    },
  },
  {
    name: 'schedules',
    args: '',
    summary: 'list schedules (a table; --json for scripts)',
    details: '',
    examples: ['kiln schedules', 'kiln schedules --json'],
    options: {},
    run: async (ctx) => {
      const schedules = [];
      for await (const schedule of ctx.kiln().schedules.list()) schedules.push(schedule);
      return listing(ctx, schedules, ['ID', 'CODE', 'STATUS', 'WHEN', 'NEXT', 'RUNS'], (s) => [
        s.id,
        s.code_name,
        s.status,
        s.cron ? `cron ${s.cron} ${s.timezone ?? 'UTC'}` : `every ${s.run_every}s`,
        shortTime(s.next_start),
        String(s.run_count),
      ]);
    },
  },
  {
    name: 'unschedule',
    args: 'ID',
    summary: 'cancel a schedule',
    details: '',
    examples: ['kiln unschedule 6740c3b2e4b0a1b2c3d4e5f6'],
    options: {},
    run: async (ctx) => {
      const id = one(ctx, 'ID');
      const answer = await ctx.kiln().schedules.cancel(id);
      ctx.out(ctx.values.json ? json({ id, ...answer }) : `Cancelled schedule ${id}\n`);
      return 0;
    },
  },
  {
    name: 'webhooks',
    args: 'add URL [--events E,E] [--code NAME] | list | rm ID | deliveries ID | redeliver ID DELIVERY | rotate ID | task-secret',
    summary: 'manage the endpoints told about task events, and their deliveries',
    details: `  add URL                subscribe an endpoint; prints its id and signing secret (shown once)
    --events E,E         only these events (default all): ${WEBHOOK_EVENTS.join(', ')}
    --code NAME          only tasks and schedules of this code
    --description TEXT
    --disabled           add it switched off
  list                   the endpoints (a table; --json for scripts)
  rm ID                  delete an endpoint and its delivery log
  deliveries ID          its deliveries, newest first (--limit N, default 30)
  redeliver ID DELIVERY  send a delivery again (same webhook-id)
  rotate ID              a new signing secret (the old one keeps signing for a while)
  task-secret            the secret signing calls to tasks' own --webhook URLs
Requests are signed per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature).`,
    examples: [
      'kiln webhooks add https://example.com/hooks/kiln --events task.error,task.timeout',
      'kiln webhooks list --json',
      'kiln webhooks deliveries 6740c3b2e4b0a1b2c3d4e5f6 --limit 5',
      'kiln webhooks rm 6740c3b2e4b0a1b2c3d4e5f6',
    ],
    options: {
      events: { type: 'string' },
      code: { type: 'string' },
      description: { type: 'string' },
      disabled: { type: 'boolean' },
      limit: { type: 'string' },
    },
    run: async (ctx) => {
      const [action, ...args] = ctx.positionals;
      const kiln = ctx.kiln();
      switch (action) {
        case 'add': {
          const [url] = operands(args, ['URL'], 'webhooks add');
          const events = (str(ctx, 'events') ?? '').split(',').filter(Boolean);
          const unknown = events.filter((e) => !(WEBHOOK_EVENTS as readonly string[]).includes(e));
          if (unknown.length) {
            throw new UsageError(
              `unknown event ${unknown.join(', ')}; known: ${WEBHOOK_EVENTS.join(', ')}`,
            );
          }
          const hook = await kiln.webhooks.create({
            url,
            events: events.length ? (events as WebhookEvent[]) : undefined,
            codeName: str(ctx, 'code'),
            description: str(ctx, 'description'),
            enabled: ctx.values.disabled ? false : undefined,
          });
          ctx.out(ctx.values.json ? json(hook) : `${hook.id}\nsecret ${hook.secret}\n`);
          return 0;
        }
        case 'list':
        case 'ls': {
          operands(args, [], 'webhooks list');
          const hooks = await kiln.webhooks.list();
          return listing(ctx, hooks, ['ID', 'STATE', 'PENDING', 'EVENTS', 'CODE', 'URL'], (h) => [
            h.id,
            !h.enabled
              ? `off${h.disabled_reason ? ` (${h.disabled_reason})` : ''}`
              : h.circuit === 'open'
                ? `parked (${h.last_error ?? 'failing'})`
                : 'on',
            h.dropped > 0 ? `${h.pending} (${h.dropped} dropped)` : String(h.pending),
            h.events.length === WEBHOOK_EVENTS.length ? 'all' : h.events.join(','),
            h.code_name ?? '*',
            h.url,
          ]);
        }
        case 'rm':
        case 'delete': {
          const [id] = operands(args, ['ID'], 'webhooks rm');
          const answer = await kiln.webhooks.delete(id);
          ctx.out(ctx.values.json ? json({ id, ...answer }) : `Deleted webhook ${id}\n`);
          return 0;
        }
        case 'deliveries': {
          const [id] = operands(args, ['ID'], 'webhooks deliveries');
          const limit = int(ctx, 'limit') ?? 30;
          const deliveries: WebhookDelivery[] = [];
          for await (const delivery of kiln.webhooks.deliveries(id, {
            perPage: Math.min(100, Math.max(1, limit)),
          })) {
            if (deliveries.length >= limit) break;
            deliveries.push(delivery);
          }
          const headers = ['ID', 'EVENT', 'TASK', 'STATE', 'TRIES', 'STATUS', 'CREATED', 'ERROR'];
          return listing(ctx, deliveries, headers, (d) => [
            d.id,
            d.event_type,
            d.task_id ?? d.schedule_id ?? '',
            d.state,
            String(d.attempt),
            d.status_code === null ? '-' : String(d.status_code),
            shortTime(d.created_at),
            d.error ?? '',
          ]);
        }
        case 'redeliver': {
          const [id, delivery] = operands(args, ['ID', 'DELIVERY'], 'webhooks redeliver');
          const answer = await kiln.webhooks.redeliver(id, delivery);
          ctx.out(ctx.values.json ? json({ id, delivery, ...answer }) : `${answer.msg}\n`);
          return 0;
        }
        case 'rotate': {
          const [id] = operands(args, ['ID'], 'webhooks rotate');
          const answer = await kiln.webhooks.rotateSecret(id);
          ctx.out(ctx.values.json ? json({ id, ...answer }) : `secret ${answer.secret}\n`);
          return 0;
        }
        case 'task-secret': {
          operands(args, [], 'webhooks task-secret');
          const secret = await kiln.webhooks.taskSecret();
          ctx.out(ctx.values.json ? json({ secret }) : `${secret}\n`);
          return 0;
        }
        default:
          throw new UsageError(
            `webhooks wants add, list, rm, deliveries, redeliver, rotate or task-secret${action ? `, not "${action}"` : ''}`,
          );
      }
    },
  },
  {
    name: 'drains',
    args: 'add URL [--code NAME] | list | rm ID',
    summary: "manage the log drains receiving the project's task output",
    details: `  add URL                add a drain; prints its id (and, for https, its signing secret, shown once)
                         URL: syslog+tcp://host:port, syslog+tls://host:port or https://…
    --code NAME          only tasks of this code
  list                   the drains, with lines delivered and dropped (a table; --json for scripts)
  rm ID                  delete a drain
Syslog gets RFC 5424 messages (APP-NAME the code, PROCID the task id, MSGID the stream); https
gets batches of JSON lines signed like webhooks.`,
    examples: [
      'kiln drains add syslog+tls://logs.example.com:6514',
      'kiln drains add https://logs.example.com/kiln --code hello',
      'kiln drains list --json',
      'kiln drains rm 6740c3b2e4b0a1b2c3d4e5f6',
    ],
    options: {
      code: { type: 'string' },
    },
    run: async (ctx) => {
      const [action, ...args] = ctx.positionals;
      const kiln = ctx.kiln();
      switch (action) {
        case 'add': {
          const [url] = operands(args, ['URL'], 'drains add');
          const drain = await kiln.logDrains.create({ url, codeName: str(ctx, 'code') });
          ctx.out(
            ctx.values.json
              ? json(drain)
              : `${drain.id}\n${drain.secret ? `secret ${drain.secret}\n` : ''}`,
          );
          return 0;
        }
        case 'list':
        case 'ls': {
          operands(args, [], 'drains list');
          const drains = await kiln.logDrains.list();
          return listing(
            ctx,
            drains,
            ['ID', 'STATE', 'DELIVERED', 'DROPPED', 'CODE', 'URL'],
            (d) => [
              d.id,
              d.failures > 0 ? `failing (${d.last_error ?? 'error'})` : 'ok',
              String(d.delivered_lines),
              String(d.dropped_lines),
              d.code_name ?? '*',
              d.url,
            ],
          );
        }
        case 'rm':
        case 'delete': {
          const [id] = operands(args, ['ID'], 'drains rm');
          const answer = await kiln.logDrains.delete(id);
          ctx.out(ctx.values.json ? json({ id, ...answer }) : `Deleted log drain ${id}\n`);
          return 0;
        }
        default:
          throw new UsageError(`drains wants add, list or rm${action ? `, not "${action}"` : ''}`);
      }
    },
  },
  {
    name: 'credentials',
    args: 'add SERVER -u USER (--password-stdin | -p PASSWORD) | list | rm SERVER',
    summary: "manage the project's logins to private registries (like iron docker login)",
    details: `  add SERVER             store the login for registry SERVER (host[:port], or a URL), replacing
                         an earlier one; workers pull the project's images from there with it
    -u, --username USER
    --password-stdin     read the password from stdin (better than -p, which shows in ps)
    -p, --password PASS
    --email EMAIL
  list                   the stored logins, never their passwords (a table; --json)
  rm SERVER              forget the login for SERVER`,
    examples: [
      'echo "$REGISTRY_PASSWORD" | kiln credentials add registry.example.com:5000 -u ci --password-stdin',
      'kiln credentials list',
      'kiln credentials rm registry.example.com:5000',
    ],
    options: {
      username: { type: 'string', short: 'u' },
      password: { type: 'string', short: 'p' },
      'password-stdin': { type: 'boolean' },
      email: { type: 'string' },
    },
    run: async (ctx) => {
      const [action, ...args] = ctx.positionals;
      switch (action) {
        case 'add': {
          const [serverAddress] = operands(args, ['SERVER'], 'credentials add');
          const username = str(ctx, 'username');
          if (!username) throw new UsageError('-u USER is required');
          const inline = str(ctx, 'password');
          if ((inline === undefined) === !ctx.values['password-stdin']) {
            throw new UsageError('give exactly one of --password-stdin and -p PASSWORD');
          }
          const password = inline ?? readInput('-').replace(/\r?\n$/, '');
          if (!password) throw new UsageError('the password is empty');
          const answer = await ctx
            .kiln()
            .credentials.add({ serverAddress, username, password, email: str(ctx, 'email') });
          ctx.out(ctx.values.json ? json(answer) : `${answer.msg}\n`);
          return 0;
        }
        case 'list':
        case 'ls': {
          operands(args, [], 'credentials list');
          const logins = await ctx.kiln().credentials.list();
          return listing(ctx, logins, ['SERVER', 'USERNAME', 'UPDATED'], (l) => [
            l.serveraddress,
            l.username,
            shortTime(l.updated_at),
          ]);
        }
        case 'rm':
        case 'delete': {
          const [serverAddress] = operands(args, ['SERVER'], 'credentials rm');
          const answer = await ctx.kiln().credentials.remove(serverAddress);
          ctx.out(
            ctx.values.json
              ? json({ serveraddress: serverAddress, ...answer })
              : `Deleted the login for ${serverAddress}\n`,
          );
          return 0;
        }
        default:
          throw new UsageError(
            `credentials wants add, list or rm${action ? `, not "${action}"` : ''}`,
          );
      }
    },
  },
  {
    name: 'tokens',
    args: 'list | create [--name N] [--role R] [--expires-at TIME] | revoke ID',
    summary: "manage the project's API tokens (needs a manage token or the admin token)",
    details: `  list                   the tokens, never their secrets (a table; --json for scripts)
  create                 a new token; prints its id and its secret (shown once)
    --name NAME          what it is for
    --role ROLE          ${TOKEN_ROLES.join(', ')} (default manage):
                         read: every read, logs included; queue: also queue, cancel and
                         retry tasks and set progress; manage: everything in the project
    --expires-at TIME    when it stops working (RFC 3339, in the future; default never)
  revoke ID              the token answers 401 from then on`,
    examples: [
      'kiln tokens create --name ci --role queue --expires-at 2027-01-01T00:00:00Z',
      'kiln tokens list',
      'kiln tokens revoke 6740c3b2e4b0a1b2c3d4e5f6',
    ],
    options: {
      name: { type: 'string' },
      role: { type: 'string' },
      'expires-at': { type: 'string' },
    },
    run: async (ctx) => {
      const [action, ...args] = ctx.positionals;
      switch (action) {
        case 'list':
        case 'ls': {
          operands(args, [], 'tokens list');
          const tokens = await ctx.kiln().tokens.list();
          const headers = ['ID', 'NAME', 'ROLE', 'CREATED', 'LAST USED', 'EXPIRES'];
          return listing(ctx, tokens, headers, (t) => [
            t.id,
            t.name,
            t.role,
            shortTime(t.created_at),
            t.last_used_at ? shortTime(t.last_used_at) : 'never',
            t.expires_at ? shortTime(t.expires_at) : 'never',
          ]);
        }
        case 'create': {
          operands(args, [], 'tokens create');
          const role = str(ctx, 'role');
          if (role !== undefined && !(TOKEN_ROLES as readonly string[]).includes(role)) {
            throw new UsageError(`--role wants one of ${TOKEN_ROLES.join(', ')}, got "${role}"`);
          }
          const created = await ctx.kiln().tokens.create({
            name: str(ctx, 'name'),
            role: role as TokenRole | undefined,
            expiresAt: str(ctx, 'expires-at'),
          });
          ctx.out(ctx.values.json ? json(created) : `${created.id}\ntoken ${created.token}\n`);
          return 0;
        }
        case 'revoke':
        case 'rm': {
          const [id] = operands(args, ['ID'], 'tokens revoke');
          const answer = await ctx.kiln().tokens.revoke(id);
          ctx.out(ctx.values.json ? json({ id, ...answer }) : `Revoked token ${id}\n`);
          return 0;
        }
        default:
          throw new UsageError(
            `tokens wants list, create or revoke${action ? `, not "${action}"` : ''}`,
          );
      }
    },
  },
];

/** Streams a task's log to stdout as it is printed; the exit code says how the task ended. */
async function follow(ctx: Context, kiln: Kiln, id: string): Promise<number> {
  let text = '';
  for await (const event of kiln.tasks.stream(id)) {
    if (event.type === 'output') {
      if (ctx.values.json) text += event.text;
      else ctx.out(event.text);
      continue;
    }
    if (ctx.values.json) ctx.out(json({ id, status: event.status, log: text }));
    else if (event.status !== 'complete') {
      const task = await kiln.tasks.get(id).catch(() => undefined);
      ctx.err(`${ctx.cErr.red(`task ${id} ${event.status}`)}${task?.msg ? `: ${task.msg}` : ''}\n`);
    }
    return isFinalStatus(event.status) ? EXIT_CODES[event.status] : 1;
  }
  throw new KilnError(0, `the log of task ${id} ended without its outcome`);
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Prints `items` as JSON with --json, else as a table of `headers` with a row per item. */
function listing<T>(
  ctx: Context,
  items: T[],
  headers: string[],
  row: (item: T) => string[],
): number {
  ctx.out(ctx.values.json ? json(items) : table(headers, items.map(row)));
  return 0;
}

function str(ctx: Context, name: string): string | undefined {
  const value = ctx.values[name];
  return typeof value === 'string' ? value : undefined;
}

/** An integer flag, within its INT_FLAGS range; anything else is a usage error naming the range. */
function int(ctx: Context, name: string): number | undefined {
  const value = str(ctx, name);
  if (value === undefined) return undefined;
  const [min, max] = INT_FLAGS[name];
  const number = /^\s*-?\d{1,20}\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(number) || number < min || number > max) {
    throw new UsageError(`--${name} wants a whole number from ${min} to ${max}, got "${value}"`);
  }
  return number;
}

/** A positive number flag (`--cpus 0.5`); the server checks it against its maximum. */
function positive(ctx: Context, name: string): number | undefined {
  const value = str(ctx, name);
  if (value === undefined) return undefined;
  const number = /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : NaN;
  if (!(number > 0)) throw new UsageError(`--${name} wants a positive number, got "${value}"`);
  return number;
}

/** `--hot` and its settings: undefined (cold) unless one of them is given. */
function hotFlags(ctx: Context): Partial<HotSettings> | undefined {
  const hot = {
    idle_timeout: int(ctx, 'hot-idle-timeout'),
    max_tasks: int(ctx, 'hot-max-tasks'),
    max_containers: int(ctx, 'hot-max-containers'),
  };
  const given = Object.entries(hot).filter(([, value]) => value !== undefined);
  if (given.length === 0 && !ctx.values.hot) return undefined;
  return Object.fromEntries(given);
}

function priority(ctx: Context, name: string): 0 | 1 | 2 | undefined {
  return int(ctx, name) as 0 | 1 | 2 | undefined;
}

/** Exactly the operands named in `names` (a subcommand's), or a usage error. */
function operands(args: string[], names: string[], command: string): string[] {
  if (args.length < names.length) {
    throw new UsageError(`${command} needs ${names.slice(args.length).join(' ')}`);
  }
  if (args.length > names.length) {
    throw new UsageError(`unexpected ${args.slice(names.length).join(' ')}`);
  }
  return args;
}

/**
 * Which tasks `cancel` or `retry` is for: one id (the single route, its output unchanged), several
 * ids, or the filter flags; never both, and never nothing (which would be every task).
 */
function taskSelection(ctx: Context): { id: string } | TaskSelection {
  const statuses = (str(ctx, 'status') ?? '').split(',').filter(Boolean) as TaskStatus[];
  const filter = { codeName: str(ctx, 'code'), label: str(ctx, 'label'), status: statuses };
  const filtered =
    filter.codeName !== undefined || filter.label !== undefined || statuses.length > 0;
  if (filtered && ctx.positionals.length > 0) {
    throw new UsageError('give task ids or --code/--status/--label, not both');
  }
  if (filtered) return { filter };
  if (ctx.positionals.length === 0) throw new UsageError('ID is missing');
  return ctx.positionals.length === 1 ? { id: ctx.positionals[0] } : { ids: ctx.positionals };
}

function notFound(result: { notFound: number }): string {
  return result.notFound > 0 ? ` (${result.notFound} not found)` : '';
}

function one(ctx: Context, what: string): string {
  const [value, ...extra] = ctx.positionals;
  if (!value) throw new UsageError(`${what} is missing`);
  if (extra.length > 0) throw new UsageError(`unexpected ${extra.join(' ')}`);
  return value;
}

function taskOptions(ctx: Context): TaskOptions {
  return {
    priority: priority(ctx, 'priority'),
    timeout: int(ctx, 'timeout'),
    cluster: str(ctx, 'cluster'),
    label: str(ctx, 'label'),
  };
}

/** `--payload` as given (checked to be JSON), `--payload-file`'s contents, or `{}`. */
function payloadOf(ctx: Context): string {
  const file = str(ctx, 'payload-file');
  const inline = str(ctx, 'payload');
  if (file !== undefined && inline !== undefined) {
    throw new UsageError('give --payload or --payload-file, not both');
  }
  const payload = file !== undefined ? readInput(file) : (inline ?? '{}');
  if (inline !== undefined) {
    try {
      JSON.parse(inline);
    } catch {
      throw new UsageError(`--payload is not JSON: ${inline}`);
    }
  }
  return payload;
}

function readInput(path: string): string {
  try {
    return readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as Error).message}`);
  }
}
