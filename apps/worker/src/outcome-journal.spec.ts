import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogStream } from '@kiln/tasks';
import { OutcomeJournal, PendingOutcome } from './outcome-journal';

const pending = (taskId: string, attempt = 1): PendingOutcome => ({
  taskId,
  attempt,
  outcome: { status: 'complete', msg: '', exitCode: 0, durationMs: 12, logSize: 3 },
  chunks: [{ seq: 1, stream: LogStream.Stdout, data: 'hi\n' }],
});

describe('OutcomeJournal', () => {
  let dir: string;
  beforeEach(() => (dir = join(mkdtempSync(join(tmpdir(), 'kiln-journal-')), 'worker-1')));
  afterEach(() => rmSync(join(dir, '..'), { recursive: true, force: true }));

  it('keeps outcomes across instances (a restarted worker) until removed', () => {
    const a = pending('0123456789abcdef01234567');
    const b = pending('0123456789abcdef01234568', 2);
    new OutcomeJournal(dir).save(a);
    new OutcomeJournal(dir).save(b);
    const journal = new OutcomeJournal(dir);
    expect(journal.all()).toEqual([a, b]);
    journal.remove(a.taskId, a.attempt);
    expect(journal.all()).toEqual([b]);
  });

  it('is empty when its directory does not exist yet', () => {
    expect(new OutcomeJournal(dir).all()).toEqual([]);
  });

  it('drops a save cut short and sets an unreadable file aside', () => {
    const journal = new OutcomeJournal(dir);
    journal.save(pending('0123456789abcdef01234567'));
    writeFileSync(join(dir, '0123456789abcdef0123456f.1.outcome.json.77.tmp'), '{"taskId":');
    writeFileSync(join(dir, '0123456789abcdef0123456e.1.outcome.json'), 'not json');
    expect(journal.all().map((p) => p.taskId)).toEqual(['0123456789abcdef01234567']);
    expect(readdirSync(dir).sort()).toEqual([
      '0123456789abcdef01234567.1.outcome.json',
      '0123456789abcdef0123456e.1.outcome.json.bad',
    ]);
  });
});
