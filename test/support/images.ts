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

/** The docker CLI on the engine the tests use; DOCKER_CONFIG keeps any login out of ~/.docker. */
export function docker(
  args: string[],
  options: { dockerConfig?: string; input?: string } = {},
): string {
  return execFileSync('docker', ['-H', `unix://${process.env.DOCKER_SOCKET}`, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    input: options.input,
    env: {
      ...process.env,
      ...(options.dockerConfig ? { DOCKER_CONFIG: options.dockerConfig } : {}),
    },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
}

/**
 * Builds a two-layer image without pulling anything (FROM scratch + Debian's static busybox):
 * layer one is busybox, layer two /kiln/run.sh, which prints `variant=<variant>` and the payload.
 */
export function buildTestImage(
  tag: string,
  variant: string,
  extra?: { file: string; bytes: number },
): void {
  const ctx = mkdtempSync(join(tmpdir(), 'kiln-test5-build-'));
  try {
    mkdirSync(join(ctx, 'bin'));
    mkdirSync(join(ctx, 'kiln'));
    copyFileSync('/bin/busybox', join(ctx, 'bin', 'busybox'));
    chmodSync(join(ctx, 'bin', 'busybox'), 0o755);
    symlinkSync('busybox', join(ctx, 'bin', 'sh'));
    writeFileSync(
      join(ctx, 'kiln', 'run.sh'),
      `#!/bin/sh\necho "variant=${variant}"\n/bin/busybox cat "$PAYLOAD_FILE"\n`,
      { mode: 0o755 },
    );
    const lines = ['FROM scratch', 'COPY bin/ /bin/', 'COPY kiln/ /kiln/'];
    if (extra) {
      // Incompressible bytes, for the benchmark's big image.
      mkdirSync(join(ctx, 'data'));
      execFileSync('sh', [
        '-c',
        `head -c ${extra.bytes} /dev/urandom > "$1"`,
        'sh',
        join(ctx, 'data', extra.file),
      ]);
      lines.push(`COPY data/ /data/`);
    }
    lines.push('CMD ["/bin/sh", "/kiln/run.sh"]');
    writeFileSync(join(ctx, 'Dockerfile'), lines.join('\n') + '\n');
    execFileSync(
      'docker',
      ['-H', `unix://${process.env.DOCKER_SOCKET}`, 'build', '-q', '--pull=false', '-t', tag, ctx],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, DOCKER_BUILDKIT: '0' },
      },
    );
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
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

/** GET on the platform registry's API. */
export async function registryGet(
  path: string,
  accept?: string,
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`http://${process.env.REGISTRY_URL}${path}`, {
    headers: accept ? { accept } : {},
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // keep text
  }
  return { status: res.status, body, headers: res.headers };
}
