import { Inject, Injectable } from '@nestjs/common';
import { chmodSync, mkdirSync, renameSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';

/**
 * The host directories of the contract files (`KILN_CONTRACT_DELIVERY=bind`): one per task
 * attempt, `<KILN_TASK_FILES_DIR>/<worker id>/<task id>.<attempt>/`, holding only that task's
 * `payload.json` and `config.json` (0444) in a 0755 directory, mounted read-only at `/mnt/kiln`
 * of its container. Binding them costs dockerd nothing, where copying them in with the archive
 * API costs it about 80 ms of CPU per task (docs/benchmarks.md, dispatch).
 *
 * The worker's own directory is 0700 and must belong to the worker's user: the files hold codes'
 * config, and a directory someone else could write to could be swapped under the worker.
 */
@Injectable()
export class TaskFiles {
  private readonly base: string;
  private readonly root: string;
  /** The files written in each directory, so that removing it takes no directory walk. */
  private readonly written = new Map<string, string[]>();

  constructor(@Inject(KILN_CONFIG) config: KilnConfig) {
    this.base = config.container.taskFilesDir;
    this.root = join(this.base, config.worker.id);
  }

  /**
   * Removes every task directory of this worker (left by an earlier life: its containers were
   * reaped) and makes sure the worker's directory is its own. Called at start, before any task.
   */
  async reset(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    for (const dir of [this.base, this.root]) {
      const stat = await lstat(dir);
      const uid = process.getuid?.() ?? stat.uid;
      if (!stat.isDirectory() || stat.uid !== uid || (stat.mode & 0o022) !== 0) {
        throw new Error(
          `KILN_TASK_FILES_DIR: ${dir} must be a directory of uid ${uid} that no one else can write to`,
        );
      }
    }
    await chmod(this.root, 0o700);
  }

  /**
   * Writes the task's files; returns the directory to mount. Called once per task on the
   * dispatch path, so it makes a handful of plain synchronous calls (two small files: a few
   * microseconds, cheaper than a round trip through libuv's thread pool each).
   */
  write(taskId: string, attempt: number, files: Record<string, string>): string {
    const dir = this.dirOf(taskId, attempt);
    try {
      mkdirSync(dir, { mode: 0o755 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      // The worker's directory went away under it: make it again.
      mkdirSync(this.root, { recursive: true, mode: 0o700 });
      mkdirSync(dir, { mode: 0o755 });
    }
    this.written.set(dir, Object.keys(files));
    // Modes set explicitly: the worker's umask must not hide the files from the task's user.
    chmodSync(dir, 0o755);
    for (const [name, content] of Object.entries(files)) {
      const file = join(dir, name);
      writeFileSync(file, content, { mode: 0o444 });
      chmodSync(file, 0o444);
    }
    return dir;
  }

  async remove(taskId: string, attempt: number): Promise<void> {
    const dir = this.dirOf(taskId, attempt);
    const names = this.written.get(dir);
    this.written.delete(dir);
    try {
      if (!names) throw new Error('unknown contents');
      for (const name of names) unlinkSync(join(dir, name));
      rmdirSync(dir);
    } catch {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * A hot container's directories (docs/hot.md): `files` (0755, its config and the payload of the
   * task it runs, 0444, bound read-only) and `socket`, where it listens: root's, 1777 (sticky) so
   * that the task's user can make its socket there, until {@link freezeSocketDir} once it listens.
   */
  hotDirs(name: string, config: string): { files: string; socket: string } {
    const dir = join(this.root, `hot-${name}`);
    const files = join(dir, 'files');
    const socket = join(dir, 'socket');
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    mkdirSync(dir, { mode: 0o700 });
    mkdirSync(files, { mode: 0o755 });
    mkdirSync(socket, { mode: 0o755 });
    chmodSync(files, 0o755);
    chmodSync(socket, 0o1777);
    this.writeHot(files, 'config.json', config);
    this.writeHot(files, 'payload.json', '');
    return { files, socket };
  }

  /** The payload of the task a hot container runs next, replaced whole (a rename). */
  writePayload(filesDir: string, payload: string): void {
    this.writeHot(filesDir, 'payload.json', payload);
  }

  /**
   * Once the container listens: nothing more can be made (or swapped) in its socket directory by
   * the task's user, and the directory must hold its socket and nothing else (no file or
   * directory made to write to later, no link).
   */
  async freezeSocketDir(socketDir: string, socketName: string): Promise<void> {
    await chmod(socketDir, 0o755);
    const entries = await readdir(socketDir);
    const socket =
      entries.length === 1 && entries[0] === socketName
        ? await lstat(join(socketDir, socketName))
        : undefined;
    if (!socket?.isSocket()) {
      throw new Error(
        `its socket directory must hold its socket alone, and holds ${JSON.stringify(entries.slice(0, 5))}`,
      );
    }
  }

  async removeHot(name: string): Promise<void> {
    await rm(join(this.root, `hot-${name}`), { recursive: true, force: true });
  }

  private writeHot(dir: string, name: string, content: string): void {
    const next = join(dir, `.${name}.next`);
    writeFileSync(next, content, { mode: 0o444 });
    chmodSync(next, 0o444);
    renameSync(next, join(dir, name));
  }

  private dirOf(taskId: string, attempt: number): string {
    return join(this.root, `${taskId}.${attempt}`);
  }
}
