'use strict';
/**
 * The HEALTHCHECK of Kiln's image. One image runs any of Kiln's processes, so this finds which one
 * runs in the container (a node process whose script is one of dist/apps/<name>/src/main.js) and
 * asks its /healthz, where the process's settings put it:
 *   api        KILN_API_PORT (default 8080), or KILN_METRICS_PORT on KILN_METRICS_HOST when set
 *   worker     KILN_WORKER_HEALTH_PORT (the image sets 8081)
 *   scheduler  KILN_SCHEDULER_HEALTH_PORT (the image sets 8082)
 * on KILN_API_HOST (127.0.0.1 when it is a wildcard address). A worker or scheduler with its health
 * port at 0 has nothing to ask: it counts as healthy while it runs. Exit 0 healthy, 1 not.
 * The environment is read here, not through libs/config: this is a probe beside Kiln, not Kiln.
 */
const { readdirSync, readFileSync } = require('node:fs');

const env = process.env;

function runningApp() {
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let argv;
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    for (const arg of argv) {
      const match = /(?:^|\/)dist\/apps\/(api|worker|scheduler)\/src\/main\.js$/.exec(arg);
      if (match) return match[1];
    }
  }
  return null;
}

function localHost(host) {
  return !host || host === '0.0.0.0' || host === '::' || host === '[::]' ? '127.0.0.1' : host;
}

function target(app) {
  const host = localHost(env.KILN_API_HOST);
  if (app === 'api') {
    const metricsPort = Number(env.KILN_METRICS_PORT || 0);
    if (metricsPort > 0) return `http://${localHost(env.KILN_METRICS_HOST)}:${metricsPort}/healthz`;
    return `http://${host}:${Number(env.KILN_API_PORT || 8080)}/healthz`;
  }
  const port = Number(
    (app === 'worker' ? env.KILN_WORKER_HEALTH_PORT : env.KILN_SCHEDULER_HEALTH_PORT) || 0,
  );
  return port > 0 ? `http://${host.includes(':') ? `[${host}]` : host}:${port}/healthz` : null;
}

async function main() {
  const app = runningApp();
  if (!app) {
    console.error('unhealthy: no Kiln process (api, worker or scheduler) runs in this container');
    return 1;
  }
  const url = target(app);
  if (!url) {
    console.log(`${app}: no health port set, running`);
    return 0;
  }
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(4000) });
    const body = (await res.text()).slice(0, 500);
    console.log(`${app}: ${url} answered ${res.status} ${body}`);
    return res.status === 200 ? 0 : 1;
  } catch (error) {
    console.error(`${app}: ${url} did not answer: ${error.message}`);
    return 1;
  }
}

main().then((code) => process.exit(code));
