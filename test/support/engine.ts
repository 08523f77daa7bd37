import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitUntil } from './kiln';
import { KILN_HOME } from './processes';

/**
 * A second Docker engine, standing in for another worker host: its own dockerd (and containerd)
 * with its own socket, data root and exec root under `.kiln/engines/<name>`, no bridge or
 * iptables, like the shared one. `kill` is the host dying: the engine, its containerd and every
 * container process go at once, with SIGKILL.
 */
export class Engine {
  readonly socket: string;
  private readonly root: string;
  private child: ChildProcess | undefined;

  constructor(readonly name: string) {
    this.root = join(KILN_HOME, 'engines', name);
    this.socket = join(this.root, 'docker.sock');
  }

  private get execRoot(): string {
    return join(this.root, 'x');
  }

  /** Starts the engine on an empty data root; resolves once it answers. */
  async start(): Promise<void> {
    this.wipe();
    mkdirSync(join(this.root, 'data'), { recursive: true });
    const log = openSync(join(this.root, 'dockerd.log'), 'a');
    this.child = spawn(
      'dockerd',
      [
        '--config-file',
        this.config(),
        '--host',
        `unix://${this.socket}`,
        '--pidfile',
        join(this.root, 'dockerd.pid'),
        '--exec-root',
        this.execRoot,
        '--data-root',
        join(this.root, 'data'),
        '--containerd-namespace',
        `kiln-${this.name}`,
        '--containerd-plugins-namespace',
        `kiln-${this.name}-plugins`,
        '--bridge=none',
        '--iptables=false',
        '--ip6tables=false',
        '--ip-forward=false',
        '--ip-masq=false',
      ],
      { detached: true, stdio: ['ignore', log, log] },
    );
    await waitUntil(`engine ${this.name} to answer`, () => this.answers(), {
      timeoutMs: 60_000,
      intervalMs: 250,
    });
  }

  /** `docker -H <this engine> …`, its output. */
  docker(args: string[]): string {
    return execFileSync('docker', ['-H', `unix://${this.socket}`, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    });
  }

  /** Whether `ref` is on this engine. */
  has(ref: string): boolean {
    try {
      this.docker(['image', 'inspect', ref]);
      return true;
    } catch {
      return false;
    }
  }

  /** The host dies: SIGKILL to dockerd, its containerd, the shims and every container process. */
  kill(): void {
    const pids = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => line.includes(this.execRoot) || line.includes(`kiln-${this.name} `))
      .map((line) => Number(line.trim().split(/\s+/)[0]));
    // The containers' own processes are the shims' children.
    const children = pids.flatMap((pid) => {
      try {
        return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
          .split('\n')
          .filter(Boolean)
          .map(Number);
      } catch {
        return [];
      }
    });
    for (const pid of [...children, ...pids]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    if (this.child?.pid) {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }

  /** Stops the engine (SIGTERM; it stops its containers) and removes its data. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child?.pid && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(-child.pid, 'SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 30_000))]);
    }
    this.kill();
    this.wipe();
  }

  private answers(): boolean {
    try {
      this.docker(['info', '--format', '{{.ServerVersion}}']);
      return true;
    } catch {
      return false;
    }
  }

  /** An empty daemon.json of its own: a system /etc/docker/daemon.json could clash. */
  private config(): string {
    const file = join(this.root, 'dockerd.json');
    writeFileSync(file, '{}\n');
    return file;
  }

  /** Unmounts what a killed engine left mounted, then removes its folder. */
  private wipe(): void {
    try {
      const mounts = execFileSync(
        'sh',
        ['-c', `grep -F " ${this.root}/" /proc/mounts | cut -d' ' -f2 | sort -r`],
        {
          encoding: 'utf8',
        },
      );
      for (const mount of mounts.split('\n').filter(Boolean)) {
        try {
          execFileSync('umount', ['-l', mount]);
        } catch {
          // not mounted any more
        }
      }
    } catch {
      // nothing mounted
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}
