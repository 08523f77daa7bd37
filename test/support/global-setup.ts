import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KILN_HOME, startApp, waitForHealthy } from './processes';
import { testRedisUrl } from './redis';

/**
 * Starts the built API, a worker and the scheduler against the test database (already migrated
 * by scripts/test.sh), with a fresh admin token and a Redis key prefix of this run's own.
 */
export default async function globalSetup(): Promise<void> {
  const required = ['TEST_DATABASE_URL', 'REDIS_URL', 'DOCKER_SOCKET'];
  const missing = required.filter((name) => !process.env[name]);
  if (missing.length) {
    throw new Error(`e2e tests need ${missing.join(', ')}: run them with \`npm test\``);
  }
  const apiPort = Number(process.env.KILN_TEST_API_PORT ?? 18080);
  const workerHealthPort = apiPort + 1;
  const run = randomBytes(4).toString('hex');
  const env: Record<string, string> = {
    DATABASE_URL: process.env.TEST_DATABASE_URL!,
    REDIS_URL: testRedisUrl(),
    DOCKER_SOCKET: process.env.DOCKER_SOCKET!,
    KILN_API_PORT: String(apiPort),
    KILN_ADMIN_TOKEN: `admin-${randomBytes(16).toString('hex')}`,
    KILN_QUEUE_PREFIX: `kiln-test-${run}`,
    KILN_LOG_LEVEL: 'log',
    // Short enough for the tests that kill workers and schedulers to see recovery quickly.
    KILN_HEARTBEAT_LAPSE_SECONDS: '6',
    KILN_CLAIM_STALE_SECONDS: '5',
    KILN_LEADER_LEASE_SECONDS: '4',
    // Uploads: small caps so the over-the-cap and gzip-bomb tests stay quick, a spool the tests
    // can look into, a key for registry credentials.
    KILN_UPLOAD_MAX_BYTES: String(32 * 1024 * 1024),
    KILN_UPLOAD_MAX_UNPACKED_BYTES: String(256 * 1024 * 1024),
    KILN_UPLOAD_SPOOL_DIR: join(KILN_HOME, 'e2e-spool'),
    KILN_CREDENTIALS_KEY: randomBytes(32).toString('base64'),
    // Zip packages: an unpacked cap small enough for a lying bomb to pass it quickly; stacks on
    // the test images (the first, the default, has node and a shell, as IronWorker's runner needs).
    KILN_ZIP_MAX_UNPACKED_BYTES: String(64 * 1024 * 1024),
    KILN_ZIP_MAX_ENTRIES: '1000',
    KILN_STACKS: 'node=kiln-test/hot-breaker:latest,busybox=kiln-test/busybox:latest',
    // Quick enough for the image collection test to see it.
    KILN_IMAGE_GC_SECONDS: '8',
    // The test images (built locally, never pulled) run for every project, as with `npm start`.
    // Registries: any public one, and the credentialed registries the tests start on loopback
    // (test/support/auth-registry.ts; a literal entry lets a loopback address through).
    KILN_SHARED_IMAGES: 'kiln-test/*',
    KILN_IMAGE_REGISTRIES: '*:*,127.0.0.1:*',
    // Webhook receivers of the tests listen on 127.0.0.1; retries and timeouts short enough to
    // watch (test/webhooks-guard.e2e-spec.ts runs its own stack with a narrower allow-list).
    WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
    KILN_WEBHOOK_RETRY_SCHEDULE: '1,1,1',
    KILN_WEBHOOK_TIMEOUT_MS: '2000',
    // Every suite calls from 127.0.0.1 and many send bad tokens on purpose: the failed-auth
    // block would refuse the suites that come after. test/http-limits runs its own stack with it.
    KILN_AUTH_FAILURE_LIMIT: '1000000',
    // Workers' per-task contract files, on a tmpfs as by default, where the tests can look.
    KILN_TASK_FILES_DIR: join(existsSync('/dev/shm') ? '/dev/shm' : KILN_HOME, `kiln-e2e-${run}`),
  };
  const workerEnv = {
    ...env,
    KILN_WORKER_ID: `e2e-${run}-default`,
    KILN_WORKER_CONCURRENCY: '4',
    KILN_WORKER_HEALTH_PORT: String(workerHealthPort),
    KILN_WORKER_HEARTBEAT_SECONDS: '2',
  };
  const children = [
    startApp('api', env),
    startApp('worker', workerEnv),
    startApp('scheduler', env),
  ];
  (globalThis as { __kilnChildren?: unknown }).__kilnChildren = children;
  const url = `http://127.0.0.1:${apiPort}`;
  await waitForHealthy(`${url}/healthz`);
  await waitForHealthy(`http://127.0.0.1:${workerHealthPort}/healthz`);
  // Mode 0600: it holds the admin token and the services' passwords (in the URLs).
  const e2eFile = join(KILN_HOME, 'e2e.json');
  writeFileSync(
    e2eFile,
    JSON.stringify({
      url,
      adminToken: env.KILN_ADMIN_TOKEN,
      env,
      workerHealthUrl: `http://127.0.0.1:${workerHealthPort}/healthz`,
    }),
    { mode: 0o600 },
  );
  chmodSync(e2eFile, 0o600);
}
