import { readFileSync } from 'node:fs';
import { Handler, TaskContext, errorMessage } from './context';

/** What a cold task knows: the contract's files and variables (DESIGN.md "Container contract"). */
export interface ColdOptions {
  taskId: string;
  /** `PAYLOAD_FILE`; without one the payload is empty. */
  payloadFile: string | undefined;
  config: unknown;
  taskDir: string | undefined;
}

/**
 * Runs `handler` once as a cold task and resolves with the exit code: 0 when it returns, 1 when
 * it throws, its message then on STDERR. What it returns goes nowhere: a cold task's result is
 * its exit code and its log.
 */
export async function runCold(handler: Handler, options: ColdOptions): Promise<number> {
  const ctx: TaskContext = {
    taskId: options.taskId,
    attempt: 1,
    deadline: undefined,
    config: options.config,
    taskDir: options.taskDir ?? process.cwd(),
    // Cold, the container has no way to Kiln.
    progress: () => undefined,
  };
  try {
    const payload =
      options.payloadFile === undefined ? '' : readFileSync(options.payloadFile, 'utf8');
    await handler(payload, ctx);
    return 0;
  } catch (error) {
    process.stderr.write(`${errorMessage(error)}\n`);
    return 1;
  }
}
