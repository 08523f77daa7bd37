import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { docker } from './images';
import { freePortFrom, KILN_HOME, LOG_DIR } from './processes';

/** A Docker registry with htpasswd auth on loopback, started and stopped by a test. */
export interface AuthRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  /** Its login; empty for an anonymous one. */
  username: string;
  password: string;
  stop(): Promise<void>;
}

/** Starts Debian's `docker-registry` with an htpasswd file holding one user (bcrypt, as it wants). */
export function startAuthRegistry(username: string, password: string): Promise<AuthRegistry> {
  return startRegistry({ username, password });
}

/**
 * Starts Debian's `docker-registry` on loopback: with an htpasswd file holding one user when
 * `login` is given, else anonymous (pushes and pulls for anybody, as a public registry's pulls).
 */
export async function startRegistry(login?: {
  username: string;
  password: string;
}): Promise<AuthRegistry> {
  const port = await freePortFrom(55100, 100);
  mkdirSync(KILN_HOME, { recursive: true });
  const dir = mkdtempSync(join(KILN_HOME, 'test-registry-'));
  if (login) {
    writeFileSync(
      join(dir, 'htpasswd'),
      execFileSync('htpasswd', ['-Bbn', login.username, login.password], { encoding: 'utf8' }),
    );
  }
  writeFileSync(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      'http:',
      `  addr: 127.0.0.1:${port}`,
      ...(login
        ? ['auth:', '  htpasswd:', '    realm: kiln-test', `    path: ${join(dir, 'htpasswd')}`]
        : []),
      '',
    ].join('\n'),
  );
  mkdirSync(LOG_DIR, { recursive: true });
  const log = createWriteStream(join(LOG_DIR, `auth-registry-${port}.log`), { flags: 'a' });
  const child: ChildProcess = spawn(
    '/usr/bin/docker-registry',
    ['serve', join(dir, 'config.yml')],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`);
      if (res.status === (login ? 401 : 200)) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error(`the test registry did not start on 127.0.0.1:${port} (see its log)`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    host: `127.0.0.1:${port}`,
    username: login?.username ?? '',
    password: login?.password ?? '',
    stop,
  };
}

/** An image pushed to a registry with its login, and no longer on the engine. */
export interface PrivateImage {
  /** `<registry host>/<repository>` */
  image: string;
  /** Removes the image from the engine (if a task pulled it) and the docker CLI's login. */
  dispose(): void;
}

/**
 * Tags `source` as `<registry>/<repository>`, pushes it with the registry's login (kept in a
 * docker config dir of its own, not ~/.docker) and removes the tag, so the worker must pull it.
 */
export function pushPrivateImage(
  registry: AuthRegistry,
  repository: string,
  source: string,
): PrivateImage {
  const dockerConfig = mkdtempSync(join(tmpdir(), 'kiln-test-docker-'));
  docker(['login', '-u', registry.username, '--password-stdin', registry.host], {
    dockerConfig,
    input: registry.password,
  });
  const image = `${registry.host}/${repository}`;
  docker(['tag', source, image]);
  docker(['push', image], { dockerConfig });
  docker(['rmi', image]);
  return {
    image,
    dispose: () => {
      try {
        docker(['rmi', image]);
      } catch {
        // not pulled, or already removed
      }
      rmSync(dockerConfig, { recursive: true, force: true });
    },
  };
}
