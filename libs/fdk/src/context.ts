import { readFileSync } from 'node:fs';

/** What a handler learns about the task it runs. */
export interface TaskContext {
  /** The task's id. */
  taskId: string;
  /** The attempt of the task (1 for the first run; cold, where Kiln does not say, always 1). */
  attempt: number;
  /** When the task times out; `undefined` cold, where Kiln does not say. */
  deadline: Date | undefined;
  /** The code's config: `CONFIG_FILE` parsed as JSON, its text when it is not JSON, `null` without one. */
  config: unknown;
  /** The task's scratch directory (`TASK_DIR`, else the working directory). */
  taskDir: string;
  /**
   * Sets the task's progress (`percent` on the task), rounded and clamped to 0–100. Hot only:
   * cold, where the container has no way to Kiln, and once the task is over, it does nothing.
   */
  progress(percent: number): void;
}

/**
 * A task's code: takes the payload (the task's payload string, as it was queued) and returns the
 * message the task ends with (hot: the answer's `msg`; cold it goes nowhere), or throws to end
 * the task `error` with the error's message.
 */
export type Handler = (payload: string, ctx: TaskContext) => string | void | Promise<string | void>;

/** The code's config as a handler sees it: JSON parsed, else the text; `null` without a file. */
export function readConfig(file: string | undefined): unknown {
  if (file === undefined) return null;
  const text = readFileSync(file, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** A progress value as the contract takes it: an integer 0–100; `undefined` for NaN. */
export function clampProgress(percent: number): number | undefined {
  if (Number.isNaN(percent)) return undefined;
  return Math.min(100, Math.max(0, Math.round(percent)));
}

/** What a thrown value says, for the task's `msg` or a cold task's STDERR. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
