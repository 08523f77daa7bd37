import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { AddressInfo, createServer, Server, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { craftTar } from './images';

// Jest-free: the benchmarks (bench/, plain node) import this file too.

/** How a {@link FakeRegistry} answers the downloads of an image's layer. */
export type LayerMode = 'serve' | 'trickle';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/**
 * A registry (distribution API v2, anonymous) on 127.0.0.1 serving any repository and tag as one
 * small image: a config and one gzipped layer holding `layerBytes` random bytes (or zeros, which
 * gzip to almost nothing: `compressible`). With `trickle`
 * it answers the version check, manifests and the config at once but sends the layer a
 * kilobyte a second, so a pull stays in progress; it counts the layer downloads open, so a test
 * sees when the engine gives one up.
 */
export class FakeRegistry {
  readonly requests: string[] = [];
  /** Layer downloads in progress now. */
  openLayerDownloads = 0;
  /** Layer downloads the engine closed before they ended. */
  abandonedLayerDownloads = 0;
  port = 0;
  private readonly server: http.Server;
  private readonly config: Buffer;
  private readonly layer: Buffer;
  private readonly manifest: Buffer;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    public layerMode: LayerMode,
    layerBytes = 64 * 1024,
    compressible = false,
  ) {
    const content = compressible ? Buffer.alloc(layerBytes) : randomBytes(layerBytes);
    const tar = craftTar([{ path: 'data/random', content }]);
    this.layer = gzipSync(tar);
    this.config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: ['/bin/true'] },
        rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
      }),
    );
    this.manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: {
          mediaType: 'application/vnd.docker.container.image.v1+json',
          size: this.config.length,
          digest: sha256(this.config),
        },
        layers: [
          {
            mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
            size: this.layer.length,
            digest: sha256(this.layer),
          },
        ],
      }),
    );
    this.server = http.createServer((req, res) => this.answer(req, res));
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The digest of the one manifest it serves. */
  get manifestDigest(): string {
    return sha256(this.manifest);
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = req.url ?? '';
    this.requests.push(`${req.method} ${path}`);
    const head = req.method === 'HEAD';
    if (path === '/v2/' || path === '/v2') {
      res.writeHead(200, {
        'content-type': 'application/json',
        'docker-distribution-api-version': 'registry/2.0',
      });
      res.end('{}');
      return;
    }
    if (/^\/v2\/.+\/manifests\/[^/]+$/.test(path)) {
      res.writeHead(200, {
        'content-type': 'application/vnd.docker.distribution.manifest.v2+json',
        'docker-content-digest': this.manifestDigest,
        'content-length': this.manifest.length,
      });
      res.end(head ? undefined : this.manifest);
      return;
    }
    if (path.endsWith(`/blobs/${sha256(this.config)}`)) {
      res.writeHead(200, { 'content-length': this.config.length });
      res.end(head ? undefined : this.config);
      return;
    }
    if (path.endsWith(`/blobs/${sha256(this.layer)}`)) {
      res.writeHead(200, {
        'content-length': this.layer.length,
        'content-type': 'application/octet-stream',
      });
      if (head) {
        res.end();
        return;
      }
      this.sendLayer(res);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"errors":[{"code":"NOT_FOUND","message":"not here"}]}');
  }

  private sendLayer(res: http.ServerResponse): void {
    if (this.layerMode === 'serve') {
      res.end(this.layer);
      return;
    }
    this.openLayerDownloads++;
    let sent = 0;
    const timer = setInterval(() => {
      const next = Math.min(sent + 1024, this.layer.length - 1);
      res.write(this.layer.subarray(sent, next));
      sent = next;
    }, 1000);
    this.timers.add(timer);
    res.once('close', () => {
      clearInterval(timer);
      this.timers.delete(timer);
      this.openLayerDownloads--;
      if (!res.writableEnded) this.abandonedLayerDownloads++;
    });
  }
}

/** A TCP server on 127.0.0.1 that accepts connections and never answers. */
export class SilentServer {
  port = 0;
  readonly sockets = new Set<Socket>();
  accepted = 0;
  private readonly server: Server = createServer((socket) => {
    this.accepted++;
    this.sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => this.sockets.delete(socket));
    // Reads (and drops) what comes: a socket never read would not see its peer hang up.
    socket.resume();
  });

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
