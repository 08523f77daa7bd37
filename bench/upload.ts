/**
 * upload: a 200 MB image (FROM scratch + busybox + one layer of incompressible random bytes,
 * built locally) is `docker save`d, then (1) `docker push`ed to the platform registry and (2)
 * uploaded through Kiln's API (`POST …/codes/{name}/image`, the raw tarball streamed from disk),
 * which checks it and pushes it to the same registry. Targets: API time within 3× of `docker
 * push`, measured in the same run; the API's memory flat (peak RSS vs before the upload). Each
 * round builds a fresh image, so neither side finds its blobs in the registry already.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync, createReadStream } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { buildImage, docker } from '../test/support/images';
import { sleep } from '../test/support/processes';
import { BENCH_HOME, setting } from './lib/env';
import { Kiln, startKiln } from './lib/kiln';
import { Api } from './lib/http';
import { defer, round, rssMiB } from './lib/procs';
import { BenchContext, BenchResult, Row, fmt, resultHeader } from './lib/report';

const MiB = 1024 * 1024;

interface Round {
  imageBytes: number;
  tarballBytes: number;
  buildSeconds: number;
  saveSeconds: number;
  pushSeconds: number;
  uploadSeconds: number;
  ratio: number;
  apiRssBeforeMiB: number;
  apiRssPeakMiB: number;
  apiRssAfterMiB: number;
}

export async function upload(ctx: BenchContext): Promise<BenchResult> {
  const startedAt = new Date();
  const params = {
    layerMiB: setting('KILN_BENCH_UPLOAD_MIB', 200),
    rounds: Math.max(1, setting('KILN_BENCH_UPLOAD_ROUNDS', 2)),
  };
  const registry = ctx.infra.registryUrl;
  if (!registry) {
    throw new Error('no platform registry: REGISTRY_URL is not set (scripts/infra.sh up)');
  }
  const run = randomBytes(4).toString('hex');
  const work = mkdtempSync(join(BENCH_HOME, 'upload-'));
  defer(`remove ${work}`, () => rmSync(work, { recursive: true, force: true }));
  const kiln = await startKiln(ctx.infra, 'upload', {
    profile: ctx.profile,
    env: {
      REGISTRY_URL: registry,
      ...(ctx.infra.registryUsername
        ? {
            KILN_REGISTRY_USERNAME: ctx.infra.registryUsername,
            KILN_REGISTRY_PASSWORD: ctx.infra.registryPassword ?? '',
          }
        : {}),
      KILN_UPLOAD_SPOOL_DIR: join(work, 'spool'),
      KILN_UPLOAD_MAX_BYTES: String(4 * 1024 * MiB),
    },
  });
  const admin = new Api(kiln.url, kiln.adminToken);
  const project = (await admin.ok('POST', '/2/projects', { name: 'bench-upload' })).body
    .id as string;
  const token = (await admin.ok('POST', `/2/projects/${project}/tokens`, {})).body.token as string;

  const rounds: Round[] = [];
  for (let i = 0; i < params.rounds; i++) {
    ctx.deadline.check();
    rounds.push(
      await measure(ctx, kiln, registry, project, token, work, `${run}-${i}`, params.layerMiB),
    );
    console.log(`[bench] upload round ${i + 1}: ${JSON.stringify(rounds[i])}`);
  }

  const worst = Math.max(...rounds.map((r) => r.ratio));
  const rssGrowth = Math.max(...rounds.map((r) => r.apiRssPeakMiB - r.apiRssBeforeMiB));
  const rows: Row[] = [];
  rounds.forEach((r, i) => {
    rows.push(
      {
        metric: `round ${i + 1}: docker push (${fmt(r.imageBytes / MiB)} MiB image)`,
        value: `${fmt(r.pushSeconds, 2)} s`,
      },
      {
        metric: `round ${i + 1}: API upload of the docker save tarball (${fmt(r.tarballBytes / MiB)} MiB)`,
        value: `${fmt(r.uploadSeconds, 2)} s (${fmt(r.tarballBytes / MiB / r.uploadSeconds)} MiB/s)`,
      },
      {
        metric: `round ${i + 1}: API RSS before → peak → after`,
        value: `${fmt(r.apiRssBeforeMiB)} → ${fmt(r.apiRssPeakMiB)} → ${fmt(r.apiRssAfterMiB)} MiB`,
      },
    );
  });
  rows.push(
    {
      metric: 'API upload time / docker push time (worst round)',
      value: `${fmt(worst, 2)}×`,
      target: '≤ 3×',
      met: worst <= 3,
    },
    {
      metric: 'API peak RSS growth during an upload (worst round)',
      value: `${fmt(rssGrowth)} MiB for a ${fmt(params.layerMiB)} MiB layer`,
      target: '≤ 64 MiB (flat)',
      met: rssGrowth <= 64,
    },
  );
  return {
    ...resultHeader('upload', ctx, startedAt),
    params: {
      ...params,
      registry,
      route: 'POST /2/projects/{pid}/codes/{name}/image (raw tarball)',
    },
    rows,
    details: { rounds },
  };
}

async function measure(
  ctx: BenchContext,
  kiln: Kiln,
  registry: string,
  project: string,
  token: string,
  work: string,
  id: string,
  layerMiB: number,
): Promise<Round> {
  const tag = `kiln-bench-upload/${id}:big`;
  const pushed = `${registry}/kiln-bench-upload/${id}:big`;
  const socket = ctx.infra.dockerSocket;
  // The docker CLI's login to the platform registry lives in a config dir of the round's own.
  const dockerConfig = join(work, `docker-config-${id}`);
  const engine = (args: string[], input?: string): string =>
    docker(args, { socket, dockerConfig, input });
  if (ctx.infra.registryUsername) {
    engine(
      ['login', '-u', ctx.infra.registryUsername, '--password-stdin', registry],
      ctx.infra.registryPassword ?? '',
    );
  }
  /** `docker rmi`, for a cleanup: an image already gone is fine. */
  const remove = (image: string): void => {
    try {
      engine(['rmi', image]);
    } catch {
      // already gone
    }
  };
  let started = performance.now();
  // FROM scratch + busybox + `layerMiB` of random bytes (incompressible), without pulling anything.
  buildImage(tag, {
    random: { file: 'random.bin', bytes: layerMiB * MiB },
    cmd: ['/bin/sh', '-c', 'echo ok'],
    socket,
    workDir: work,
  });
  defer(`docker rmi ${tag}`, () => remove(tag));
  const buildSeconds = (performance.now() - started) / 1000;
  const imageBytes = Number(engine(['image', 'inspect', '--format', '{{.Size}}', tag]).trim());

  const tarball = join(work, `${id}.tar`);
  started = performance.now();
  engine(['save', '-o', tarball, tag]);
  const saveSeconds = (performance.now() - started) / 1000;
  const tarballBytes = statSync(tarball).size;

  // Baseline: docker push of the same image to the same registry.
  engine(['tag', tag, pushed]);
  defer(`docker rmi ${pushed}`, () => remove(pushed));
  await sleep(1000);
  started = performance.now();
  engine(['push', pushed]);
  const pushSeconds = (performance.now() - started) / 1000;

  // Kiln: the tarball streamed to the API, which checks it and pushes it.
  await sleep(1000);
  const pid = kiln.api.child.pid!;
  const apiRssBeforeMiB = rssMiB(pid, 'VmRSS');
  resetPeak(pid);
  let peak = apiRssBeforeMiB;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(pid, 'VmRSS'))), 50);
  started = performance.now();
  const answer = await postFile(
    `${kiln.url}/2/projects/${project}/codes/big-${id}/image`,
    token,
    tarball,
  );
  const uploadSeconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  if (answer.status !== 200) throw new Error(`upload answered ${answer.status}: ${answer.text}`);
  const hwm = peakSinceReset(pid);
  rmSync(tarball, { force: true });
  ctx.deadline.check();
  return {
    imageBytes,
    tarballBytes,
    buildSeconds: round(buildSeconds, 2),
    saveSeconds: round(saveSeconds, 2),
    pushSeconds: round(pushSeconds, 2),
    uploadSeconds: round(uploadSeconds, 2),
    ratio: round(uploadSeconds / pushSeconds, 2),
    apiRssBeforeMiB: round(apiRssBeforeMiB),
    apiRssPeakMiB: round(Math.max(peak, hwm ?? 0)),
    apiRssAfterMiB: round(rssMiB(pid, 'VmRSS')),
  };
}

/** Resets the kernel's peak RSS (VmHWM) of a process (writing 5 to clear_refs). */
function resetPeak(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // not allowed: the sampled peak is used alone
  }
}

function peakSinceReset(pid: number): number | undefined {
  try {
    return rssMiB(pid, 'VmHWM');
  } catch {
    return undefined;
  }
}

function postFile(
  url: string,
  token: string,
  file: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        headers: {
          authorization: `OAuth ${token}`,
          'content-type': 'application/x-tar',
          'content-length': String(statSync(file).size),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    createReadStream(file, { highWaterMark: MiB }).pipe(req);
  });
}
