import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = join(__dirname, '..', '..', '..', '..');
const STORE = 'libs/tasks/src/store/';

/** Every non-test TypeScript file under `dir`, relative to the repository. */
function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && /(?<!\.spec)\.ts$/.test(entry.name))
    .map((entry) => relative(ROOT, join(entry.parentPath, entry.name)));
}

/** The files outside `allowed` whose text matches `pattern`. */
function offenders(pattern: RegExp, dirs: string[], allowed = ''): string[] {
  return dirs
    .flatMap(sources)
    .filter((file) => allowed === '' || !file.startsWith(allowed))
    .filter((file) => pattern.test(readFileSync(join(ROOT, file), 'utf8')));
}

describe('the task store', () => {
  it('finds its own writes, so the checks below can see one', () => {
    expect(offenders(/UPDATE tasks|INSERT INTO tasks/, ['libs'])).toEqual(
      expect.arrayContaining([`${STORE}task-lifecycle.ts`, `${STORE}task-record.ts`]),
    );
  });

  it('holds every write to the tasks table', () => {
    const writes = /\b(UPDATE|INSERT INTO|DELETE FROM)\s+tasks\b|\b(update|insert|delete)\(Task\b/;
    expect(offenders(writes, ['apps', 'libs'], STORE)).toEqual([]);
  });

  it('is what the apps use: no app injects a DataSource', () => {
    expect(offenders(/\bDataSource\b/, ['apps'])).toEqual([]);
  });
});
