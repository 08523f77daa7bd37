import { Logger } from '@nestjs/common';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { isId } from '@kiln/common';
import type { TaskLabels } from '@kiln/metrics';
import type { LogChunk, TaskOutcome } from '@kiln/tasks';

/** The end of one attempt of a task that Postgres has not got yet. */
export interface PendingOutcome {
  taskId: string;
  attempt: number;
  outcome: TaskOutcome;
  /** Log pieces the task printed that are not stored yet, in print order. */
  chunks: LogChunk[];
  /** What labels the task's metrics once its outcome is recorded (absent: not counted). */
  labels?: TaskLabels;
}

const SUFFIX = '.outcome.json';

/**
 * Outcomes waiting for Postgres, on local disk: one file per attempt,
 * `<dir>/<task id>.<attempt>.outcome.json`, written to a temporary name, fsynced and renamed into
 * place, so a worker killed at any moment leaves either the whole outcome or none. A worker
 * restarted under the same id (and so the same `dir`) writes them when it starts.
 */
export class OutcomeJournal {
  private readonly logger = new Logger(OutcomeJournal.name);

  constructor(private readonly dir: string) {}

  save(pending: PendingOutcome): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const path = this.pathOf(pending.taskId, pending.attempt);
    const temporary = `${path}.${process.pid}.tmp`;
    const fd = openSync(temporary, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(pending));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
    const dirFd = openSync(this.dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  }

  remove(taskId: string, attempt: number): void {
    rmSync(this.pathOf(taskId, attempt), { force: true });
  }

  /** Every outcome kept, oldest file name order; unreadable files are set aside as `.bad`. */
  all(): PendingOutcome[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const found: PendingOutcome[] = [];
    for (const name of names.sort()) {
      const path = join(this.dir, name);
      if (name.endsWith('.tmp')) {
        rmSync(path, { force: true }); // a save cut short: its outcome was never promised
        continue;
      }
      if (!name.endsWith(SUFFIX)) continue;
      const pending = parsePending(readFileSync(path, 'utf8'));
      if (pending) {
        found.push(pending);
      } else {
        this.logger.error(`unreadable outcome ${path}: set aside as ${path}.bad`);
        renameSync(path, `${path}.bad`);
      }
    }
    return found;
  }

  private pathOf(taskId: string, attempt: number): string {
    return join(this.dir, `${taskId}.${attempt}${SUFFIX}`);
  }
}

function parsePending(text: string): PendingOutcome | null {
  try {
    const value = JSON.parse(text) as PendingOutcome;
    const ok =
      typeof value.taskId === 'string' &&
      isId(value.taskId) &&
      Number.isInteger(value.attempt) &&
      typeof value.outcome?.status === 'string' &&
      Array.isArray(value.chunks);
    return ok ? value : null;
  } catch {
    return null;
  }
}
