import net, { AddressInfo } from 'node:net';
import { parseAllowList } from '@kiln/common';
import type { KilnConfig } from '@kiln/config';
import { drainTarget } from './log-drain-spec';
import { SyslogSender } from './syslog-sender';

/** The syslog adapter against real TCP servers on loopback. */
describe('SyslogSender', () => {
  const config = (allowed: string) =>
    ({
      webhooks: {
        allowedHosts: parseAllowList(allowed).entries,
        connectTimeoutMs: 1000,
        timeoutMs: 5000,
      },
    }) as unknown as KilnConfig;
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    for (const server of servers) {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  /** A server that keeps what it reads; `close` says whether it closes its side on our FIN. */
  async function server(close: boolean) {
    const got: string[] = [];
    const srv = net.createServer({ allowHalfOpen: !close }, (socket) => {
      sockets.add(socket);
      socket.on('data', (data: Buffer) => got.push(data.toString()));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    servers.push(srv);
    return { got, port: (srv.address() as AddressInfo).port };
  }

  it('writes the batch and takes a clean close as accepted', async () => {
    const { got, port } = await server(true);
    const sender = new SyslogSender(config('127.0.0.1'));
    const result = await sender.send(drainTarget(`syslog+tcp://127.0.0.1:${port}`), '5 hello');
    expect(result).toEqual({ error: null });
    expect(got.join('')).toBe('5 hello');
  });

  it('takes a receiver that keeps its side open as accepted after a grace, not as a failure', async () => {
    const { got, port } = await server(false);
    const sender = new SyslogSender(config('127.0.0.1'));
    const result = await sender.send(drainTarget(`syslog+tcp://127.0.0.1:${port}`), '2 hi');
    expect(result).toEqual({ error: null });
    expect(got.join('')).toBe('2 hi');
  });

  it('says what kind of failure, naming no address', async () => {
    const { port } = await server(true);
    const gone = servers.pop()!;
    await new Promise((resolve) => gone.close(resolve));
    const sender = new SyslogSender(config('127.0.0.1'));
    expect(await sender.send(drainTarget(`syslog+tcp://127.0.0.1:${port}`), '1 x')).toEqual({
      error: 'connection refused',
    });
  });

  it('refuses loopback without the allow-list, before connecting', async () => {
    const { got, port } = await server(true);
    const sender = new SyslogSender(config(''));
    const result = await sender.send(drainTarget(`syslog+tcp://127.0.0.1:${port}`), '1 x');
    expect(result.error).toMatch(/^destination not allowed \(a loopback address/);
    expect(got).toEqual([]);
  });
});
