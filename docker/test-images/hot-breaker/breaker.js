'use strict';
/**
 * The kiln-test/hot-breaker image (built by scripts/build-hot-test-images.sh): a hot container
 * that breaks Kiln's hot contract (docs/hot.md) in one chosen way, for the worker's tests. It
 * speaks the contract by hand, without @kiln/fdk. A code picks the way with its command:
 *
 *   node /kiln/breaker.js <mode> [argument]
 *
 * A "task" below is the contract's: the start fence line on STDOUT and STDERR, the line
 * `breaker <mode>` on STDOUT, the end fence line on both. Modes:
 *
 *   ok               keeps the contract: a task, then 200 {"status":"complete","msg":"ok"} (the
 *                    image's CMD; a baseline)
 *   never-listen     never listens on KILN_HOT_SOCKET; sleeps forever
 *   garbage          a task, then 200 with a body that is not JSON
 *   http-500         a task, then 500 {"status":"error","msg":"http-500"}
 *   bad-status       a task, then 200 {"status":"weird","msg":"bad-status"}
 *   close            a task, then closes the connection without an answer
 *   exit-mid-task    the start fences and its line, then process.exit(3): no end fence, no answer
 *   no-end-fence     the start fences and its line, then 200 complete: no end fence
 *   symlink-socket   makes KILN_HOT_SOCKET a symbolic link to [argument] (default /etc/passwd)
 *                    instead of listening, then sleeps forever
 *   slow-ready       listens only after [argument] seconds (default 60), then as `ok`
 *
 * SIGTERM and SIGINT end it at once (node as PID 1 would ignore them).
 */
const { createServer } = require('node:http');
const { rmSync, symlinkSync } = require('node:fs');

const socketPath = process.env.KILN_HOT_SOCKET;
const [mode, argument] = process.argv.slice(2);

const fence = (value) => {
  process.stdout.write(`${value}\n`);
  process.stderr.write(`${value}\n`);
};
const say = () => console.log(`breaker ${mode}`);
const task = (value) => {
  fence(value);
  say();
  fence(value);
};
const answer = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body);
};
const json = (status, msg) => JSON.stringify({ status, msg });
const sleepForever = () => setInterval(() => undefined, 1 << 30);

/**
 * Listens on KILN_HOT_SOCKET; `onCall(fence, res)` once each `POST /call`'s body is read. Any
 * other request (a readiness probe) gets a 404 and runs nothing.
 */
function listen(onCall) {
  rmSync(socketPath, { force: true });
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/call')
        return answer(res, 404, json('error', 'not a call'));
      onCall(String(req.headers['kiln-log-fence'] ?? ''), res);
    });
  });
  server.listen({ path: socketPath, readableAll: true, writableAll: true });
}

const MODES = {
  ok: () =>
    listen((value, res) => {
      task(value);
      answer(res, 200, json('complete', 'ok'));
    }),
  'never-listen': sleepForever,
  garbage: () =>
    listen((value, res) => {
      task(value);
      answer(res, 200, 'this is not JSON');
    }),
  'http-500': () =>
    listen((value, res) => {
      task(value);
      answer(res, 500, json('error', 'http-500'));
    }),
  'bad-status': () =>
    listen((value, res) => {
      task(value);
      answer(res, 200, json('weird', 'bad-status'));
    }),
  close: () =>
    listen((value, res) => {
      task(value);
      res.socket.destroy();
    }),
  'exit-mid-task': () =>
    listen((value) => {
      fence(value);
      say();
      process.exit(3);
    }),
  'no-end-fence': () =>
    listen((value, res) => {
      fence(value);
      say();
      answer(res, 200, json('complete', 'no-end-fence'));
    }),
  'symlink-socket': () => {
    rmSync(socketPath, { force: true });
    symlinkSync(argument ?? '/etc/passwd', socketPath);
    sleepForever();
  },
  'slow-ready': () => setTimeout(MODES.ok, Number(argument ?? 60) * 1000),
};

for (const signal of ['SIGTERM', 'SIGINT']) process.once(signal, () => process.exit(143));
if (!Object.hasOwn(MODES, mode)) {
  console.error(
    `breaker: unknown mode ${JSON.stringify(mode)}; modes: ${Object.keys(MODES).join(', ')}`,
  );
  process.exit(2);
}
MODES[mode]();
