'use strict';
/**
 * The handler of the kiln-test/node-hot image (built by scripts/build-hot-test-images.sh): a hot
 * container speaking Kiln's hot contract through @kiln/fdk (docs/hot.md), driven by its payload
 * for the tests. It runs cold too (no KILN_HOT_SOCKET), as any @kiln/fdk handler does.
 *
 * The payload is a JSON object; an empty or non-JSON payload (or one that is not an object) is
 * `{}`. Its fields, in the order they act (a missing field does nothing):
 *
 *   quiet: true          skip the first line, which is otherwise always printed on STDOUT:
 *                        `container=<os.hostname()> pid=<process.pid> task=<ctx.taskId>`
 *   countCalls: true     print `calls=<n>`: the calls this process has served, this one included
 *   lines: string[]      console.log each
 *   errLines: string[]   console.error each
 *   printConfig: true    print `config=<JSON of ctx.config>`
 *   writeFile: name      write the file `name` (text `written by a task\n`) into ctx.taskDir
 *   listTaskDir: true    print `taskdir=[<ctx.taskDir's entries, sorted, joined by ",">]`
 *   progress: number[]   ctx.progress each
 *   background: true     start a timer printing `background tick <n>` (n = 1, 2, …) every 20 ms, forever (it goes
 *                        on between tasks, outside their fences)
 *   marks: {count, intervalMs}  print `mark <Date.now()>` count times, intervalMs apart: lines
 *                        that say when they were printed (bench/ui.ts times their way to a page)
 *   sleepMs: number      wait that long (a timer)
 *   spinMs: number       keep the CPU busy that long (a busy loop)
 *   noNewline: string    process.stdout.write it, with no newline after it
 *   exit: number         process.exit(exit) here: a crash in the middle of the task
 *   fail: string         throw new Error(fail): the task ends `error` with that message
 *   result: string       return it: the task's `msg`
 *
 * Example: {"lines": ["a", "b"], "progress": [50], "result": "done"}
 */
const { handle } = require('@kiln/fdk');
const { readdirSync, writeFileSync } = require('node:fs');
const { hostname } = require('node:os');
const { join } = require('node:path');

let calls = 0;

/** The payload's object, `{}` when it is not one. */
function fields(payload) {
  try {
    const value = JSON.parse(payload);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : {};
  } catch {
    return {};
  }
}

/** `value` when it is an array, else none. */
const list = (value) => (Array.isArray(value) ? value : []);

handle(async (payload, ctx) => {
  calls += 1;
  const p = fields(payload);
  if (p.quiet !== true)
    console.log(`container=${hostname()} pid=${process.pid} task=${ctx.taskId}`);
  if (p.countCalls === true) console.log(`calls=${calls}`);
  for (const line of list(p.lines)) console.log(line);
  for (const line of list(p.errLines)) console.error(line);
  if (p.printConfig === true) console.log(`config=${JSON.stringify(ctx.config)}`);
  if (typeof p.writeFile === 'string') {
    writeFileSync(join(ctx.taskDir, p.writeFile), 'written by a task\n');
  }
  if (p.listTaskDir === true) console.log(`taskdir=[${readdirSync(ctx.taskDir).sort().join(',')}]`);
  for (const percent of list(p.progress)) ctx.progress(percent);
  if (p.background === true) {
    let tick = 0;
    setInterval(() => console.log(`background tick ${++tick}`), 20);
  }
  if (p.marks !== null && typeof p.marks === 'object') {
    for (let i = 0; i < Number(p.marks.count ?? 0); i++) {
      console.log(`mark ${Date.now()}`);
      await new Promise((resolve) => setTimeout(resolve, Number(p.marks.intervalMs ?? 0)));
    }
  }
  if (typeof p.sleepMs === 'number') await new Promise((resolve) => setTimeout(resolve, p.sleepMs));
  if (typeof p.spinMs === 'number') {
    const end = Date.now() + p.spinMs;
    while (Date.now() < end);
  }
  if (typeof p.noNewline === 'string') process.stdout.write(p.noNewline);
  if (typeof p.exit === 'number') process.exit(p.exit);
  if (typeof p.fail === 'string') throw new Error(p.fail);
  return typeof p.result === 'string' ? p.result : undefined;
});
