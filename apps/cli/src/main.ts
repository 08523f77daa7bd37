#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { Kiln, KilnError, processEnvironment } from '@kiln/client';
import { COMMANDS, Command, Context, UsageError, Values } from './commands';
import { colours } from './format';

/** Flags every command takes. */
const GLOBAL = {
  url: { type: 'string' },
  'project-id': { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  'no-color': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const GLOBAL_HELP = `Settings (highest first): --url, --project-id, --token; KILN_URL, KILN_PROJECT_ID, KILN_TOKEN
(or IronWorker's IRON_PROJECT_ID, IRON_TOKEN, IRON_HOST, IRON_PORT, IRON_SCHEME); iron.json in the
current directory; the config saved by \`kiln login\`. The URL defaults to http://127.0.0.1:8080.
  --json                 print JSON (every command), for scripts
  --no-color             no colour (also NO_COLOR=1; colour is only used on a terminal)
  -h, --help             help (also \`kiln help COMMAND\`)`;

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `kiln: queue and watch Kiln tasks from a shell

Usage: kiln COMMAND [ARGS] [--json] [--url URL --project-id ID --token TOKEN]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

${GLOBAL_HELP}

Examples:
  kiln register kiln-test/busybox:latest --name hello
  kiln queue hello --payload '{"a":1}' --wait
  kiln tasks --status running
  kiln log -f TASK_ID
`;
}

function commandHelp(command: Command): string {
  return `Usage: kiln ${command.name} ${command.args}

${command.summary[0].toUpperCase()}${command.summary.slice(1)}.
${command.details ? `${command.details}\n` : ''}
${GLOBAL_HELP}

Examples:
${command.examples.map((e) => `  ${e}`).join('\n')}
`;
}

async function main(argv: string[]): Promise<number> {
  const out = (text: string) => void process.stdout.write(text);
  const err = (text: string) => void process.stderr.write(text);
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    const target = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    if (name === 'help' && rest[0] && !target) {
      err(`kiln: no command "${rest[0]}"; see kiln --help\n`);
      return 2;
    }
    out(target ? commandHelp(target) : usage());
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-v') {
    out('kiln 0.1.0\n');
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    err(`kiln: no command "${name}"; see kiln --help\n`);
    return 2;
  }
  let values: Values;
  let positionals: string[];
  try {
    const parsed = parseArgs({
      args: rest,
      options: { ...GLOBAL, ...command.options },
      allowPositionals: true,
      strict: true,
    });
    values = parsed.values;
    positionals = parsed.positionals;
  } catch (error) {
    err(`kiln ${name}: ${(error as Error).message.split('\n')[0]}; see kiln ${name} --help\n`);
    return 2;
  }
  if (values.help) {
    out(commandHelp(command));
    return 0;
  }
  const noColor = Boolean(values['no-color']) || Boolean(processEnvironment().NO_COLOR);
  const ctx: Context = {
    values,
    positionals,
    out,
    err,
    c: colours(Boolean(process.stdout.isTTY), noColor),
    cErr: colours(Boolean(process.stderr.isTTY), noColor),
    stderrTty: Boolean(process.stderr.isTTY),
    kiln: () =>
      new Kiln({
        url: values.url as string | undefined,
        projectId: values['project-id'] as string | undefined,
        token: values.token as string | undefined,
      }),
  };
  try {
    return await command.run(ctx);
  } catch (error) {
    if (error instanceof UsageError) {
      err(`kiln ${name}: ${error.message}; see kiln ${name} --help\n`);
      return 2;
    }
    if (error instanceof KilnError) {
      const status = error.status ? `${error.status} ` : '';
      err(
        `kiln: ${status}${oneLine(error.msg)}${error.isAuth ? ' (check the token and project id: kiln login)' : ''}\n`,
      );
      return 1;
    }
    err(`kiln: ${oneLine((error as Error).message ?? String(error))}\n`);
    return 1;
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`kiln: ${String(error)}\n`);
    process.exitCode = 1;
  },
);
