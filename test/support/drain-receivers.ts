import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net, { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { sleep } from './processes';

/** A line as a syslog receiver stored it: RFC 5424 header fields and the message. */
export interface SyslogLine {
  app: string;
  procid: string;
  msgid: string;
  severity: string;
  sd: string;
  msg: string;
}

/** A self-signed certificate for 127.0.0.1, made with openssl in `dir`. */
export function selfSignedCert(dir: string): { key: string; cert: string; certFile: string } {
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  return { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), certFile };
}

async function listening(port: number, up: boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open === up) return;
    if (Date.now() > deadline) throw new Error(`port ${port} still ${open ? 'open' : 'closed'}`);
    await sleep(100);
  }
}

/**
 * A real rsyslogd (Debian's), in the foreground, with imtcp on a loopback port and an omfile
 * action writing each message's header fields to a file in a temp dir of its own. Stop and start
 * again on the same port to play a receiver that is down for a while.
 */
export class Rsyslog {
  private readonly dir = mkdtempSync(join(tmpdir(), 'kiln-rsyslog-'));
  private child: ChildProcess | undefined;
  port = 0;

  get file(): string {
    return join(this.dir, 'messages.log');
  }

  async start(port?: number): Promise<this> {
    this.port = port ?? (await freeLoopbackPort());
    const conf = join(this.dir, 'rsyslog.conf');
    writeFileSync(
      conf,
      [
        `global(workDirectory="${this.dir}")`,
        'module(load="imtcp")',
        'template(name="kiln" type="string"',
        '  string="%app-name%|%procid%|%msgid%|%syslogseverity-text%|%structured-data%|%msg%\\n")',
        `input(type="imtcp" address="127.0.0.1" port="${this.port}")`,
        `action(type="omfile" file="${this.file}" template="kiln" asyncWriting="off" flushOnTXEnd="on")`,
        '',
      ].join('\n'),
    );
    this.child = spawn('rsyslogd', ['-n', '-f', conf, '-i', join(this.dir, 'rsyslogd.pid')], {
      stdio: 'ignore',
    });
    await listening(this.port, true);
    return this;
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    await listening(this.port, false);
  }

  lines(): SyslogLine[] {
    if (!existsSync(this.file)) return [];
    return readFileSync(this.file, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => {
        const [app, procid, msgid, severity, sd, ...rest] = line.split('|');
        return { app, procid, msgid, severity, sd, msg: rest.join('|').replace(/^ /, '') };
      });
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A syslog receiver over TLS on 127.0.0.1 (Debian's rsyslog lacks its TLS driver here): reads
 * RFC 6587 octet-counted frames and keeps the RFC 5424 messages.
 */
export class TlsSyslogReceiver {
  readonly messages: string[] = [];
  private server!: tls.Server;
  port = 0;

  async start(key: string, cert: string): Promise<this> {
    this.server = tls.createServer({ key, cert }, (socket) => {
      let buffer = Buffer.alloc(0);
      socket.on('data', (data: Buffer) => {
        buffer = Buffer.concat([buffer, data]);
        for (;;) {
          const space = buffer.indexOf(0x20);
          if (space < 0) break;
          const length = Number(buffer.subarray(0, space).toString());
          if (buffer.length < space + 1 + length) break;
          this.messages.push(buffer.subarray(space + 1, space + 1 + length).toString('utf8'));
          buffer = buffer.subarray(space + 1 + length);
        }
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    await new Promise((resolve) => this.server.close(resolve));
  }
}

export interface HttpsBatch {
  headers: Record<string, string | string[] | undefined>;
  body: string;
  lines: any[];
}

/**
 * An HTTPS receiver of drain batches on 127.0.0.1: answers `status()` (200 unless changed),
 * keeps what it accepted with 2xx.
 */
export class HttpsDrainReceiver {
  readonly accepted: HttpsBatch[] = [];
  refused = 0;
  status: () => number = () => 200;
  private server!: https.Server;
  port = 0;

  async start(key: string, cert: string): Promise<this> {
    this.server = https.createServer({ key, cert }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const status = this.status();
        if (status >= 200 && status < 300) {
          this.accepted.push({
            headers: req.headers,
            body,
            lines: body
              .split('\n')
              .filter((line) => line !== '')
              .map((line) => JSON.parse(line)),
          });
        } else this.refused++;
        res.statusCode = status;
        res.end();
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  url(path = '/drain'): string {
    return `https://127.0.0.1:${this.port}${path}`;
  }

  lines(): any[] {
    return this.accepted.flatMap((batch) => batch.lines);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
