import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Jest-free: the benchmarks (bench/, plain node) import this file too.

/** The image the tests (and benchmarks) run tasks on: built by scripts/build-test-images.sh. */
export const TEST_IMAGE = 'kiln-test/busybox:latest';

/** The locally built `@kiln/fdk` test image (scripts/build-hot-test-images.sh). */
export const NODE_HOT_IMAGE = 'kiln-test/node-hot:latest';

/**
 * The docker CLI on the engine the tests use (DOCKER_SOCKET, unless `socket` names another);
 * DOCKER_CONFIG keeps any login out of ~/.docker.
 */
export function docker(
  args: string[],
  options: {
    dockerConfig?: string;
    input?: string;
    socket?: string;
    env?: Record<string, string>;
  } = {},
): string {
  const socket = options.socket ?? process.env.DOCKER_SOCKET;
  return execFileSync('docker', ['-H', `unix://${socket}`, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    input: options.input,
    env: {
      ...process.env,
      ...options.env,
      ...(options.dockerConfig ? { DOCKER_CONFIG: options.dockerConfig } : {}),
    },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
}

export interface ImageSpec {
  /** `/kiln/run.sh`, a layer of its own after busybox's, when given. */
  runScript?: string;
  /** `/data/<file>` holding `bytes` random (incompressible) bytes, the last layer, when given. */
  random?: { file: string; bytes: number };
  /** The image's CMD. */
  cmd: string[];
  /** Paths the image declares as `VOLUME`s. */
  volumes?: string[];
  /** The engine (DOCKER_SOCKET unless given). */
  socket?: string;
  /** Where the build context is made (the system's temporary folder unless given). */
  workDir?: string;
}

/** Builds an image without pulling anything: FROM scratch, Debian's static busybox, `spec`. */
export function buildImage(tag: string, spec: ImageSpec): void {
  const ctx = mkdtempSync(join(spec.workDir ?? tmpdir(), 'kiln-image-build-'));
  try {
    mkdirSync(join(ctx, 'bin'));
    copyFileSync('/bin/busybox', join(ctx, 'bin', 'busybox'));
    chmodSync(join(ctx, 'bin', 'busybox'), 0o755);
    symlinkSync('busybox', join(ctx, 'bin', 'sh'));
    const lines = ['FROM scratch', 'COPY bin/ /bin/'];
    if (spec.runScript !== undefined) {
      mkdirSync(join(ctx, 'kiln'));
      writeFileSync(join(ctx, 'kiln', 'run.sh'), spec.runScript, { mode: 0o755 });
      lines.push('COPY kiln/ /kiln/');
    }
    if (spec.random) {
      mkdirSync(join(ctx, 'data'));
      execFileSync('sh', [
        '-c',
        `head -c ${spec.random.bytes} /dev/urandom > "$1"`,
        'sh',
        join(ctx, 'data', spec.random.file),
      ]);
      lines.push('COPY data/ /data/');
    }
    if (spec.volumes) lines.push(`VOLUME ${JSON.stringify(spec.volumes)}`);
    lines.push(`CMD ${JSON.stringify(spec.cmd)}`);
    writeFileSync(join(ctx, 'Dockerfile'), lines.join('\n') + '\n');
    docker(['build', '-q', '--pull=false', '-t', tag, ctx], {
      socket: spec.socket,
      env: { DOCKER_BUILDKIT: '0' },
    });
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}

/**
 * A two-layer test image: busybox, then /kiln/run.sh, which prints `variant=<variant>` and the
 * payload.
 */
export function buildTestImage(tag: string, variant: string): void {
  buildImage(tag, {
    runScript: `#!/bin/sh\necho "variant=${variant}"\n/bin/busybox cat "$PAYLOAD_FILE"\n`,
    cmd: ['/bin/sh', '/kiln/run.sh'],
  });
}

export interface TarItem {
  path: string;
  /** '0' file (default), '2' symlink, '5' directory, '3' character device... */
  type?: string;
  content?: Buffer | string;
  link?: string;
}

/** A ustar archive from hand-made entries, for the bad tarballs. */
export function craftTar(items: TarItem[]): Buffer {
  const blocks: Buffer[] = [];
  for (const item of items) {
    const body = Buffer.from(item.content ?? '');
    blocks.push(tarHeader(item.path, body.length, item.type, item.link), body);
    blocks.push(Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** The 512-byte ustar header of one entry (its content follows, padded to 512). */
export function tarHeader(path: string, size: number, type = '0', link = ''): Buffer {
  const header = Buffer.alloc(512, 0);
  header.write(path, 0, 100, 'utf8');
  header.write('0000644\0', 100, 8, 'ascii');
  header.write('0000000\0', 108, 8, 'ascii');
  header.write('0000000\0', 116, 8, 'ascii');
  header.write(size.toString(8).padStart(11, '0') + '\0', 124, 12, 'ascii');
  header.write('00000000000\0', 136, 12, 'ascii');
  header.fill(' ', 148, 156);
  header.write(type, 156, 1, 'ascii');
  if (link) header.write(link, 157, 100, 'utf8');
  header.write('ustar\u0000', 257, 6, 'ascii');
  header.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return header;
}

/**
 * GET on the platform registry's API, with Kiln's login (KILN_REGISTRY_USERNAME/_PASSWORD, from
 * scripts/infra.sh's env file) unless `anonymous`.
 */
export async function registryGet(
  path: string,
  accept?: string,
  anonymous = false,
): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = accept ? { accept } : {};
  const { KILN_REGISTRY_USERNAME: user, KILN_REGISTRY_PASSWORD: password } = process.env;
  if (!anonymous && user) {
    headers.authorization = `Basic ${Buffer.from(`${user}:${password ?? ''}`).toString('base64')}`;
  }
  const res = await fetch(`http://${process.env.REGISTRY_URL}${path}`, { headers });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // keep text
  }
  return { status: res.status, body, headers: res.headers };
}
