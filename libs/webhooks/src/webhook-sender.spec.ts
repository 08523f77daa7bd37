import http from 'node:http';
import https from 'node:https';
import { AddressInfo, Socket } from 'node:net';
import { parseAllowList, RefusedDestination } from '@kiln/common';
import { deliveryError, postWebhook, refusal, SendOptions } from './webhook-sender';

/** The sender against real HTTP servers on loopback; fake DNS where a name must resolve elsewhere. */
describe('postWebhook', () => {
  const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent() };
  let server: http.Server;
  let port: number;
  let hits: string[];
  let handler: (req: http.IncomingMessage, res: http.ServerResponse) => void;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      hits.push(req.url ?? '');
      handler(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  beforeEach(() => {
    hits = [];
    handler = (_req, res) => res.end('ok');
  });
  afterEach(() => jest.restoreAllMocks());
  afterAll(async () => {
    agents.http.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const options = (allow = `127.0.0.1:${port}`, extra: Partial<SendOptions> = {}): SendOptions => ({
    connectTimeoutMs: 1000,
    timeoutMs: 2000,
    maxResponseBytes: 1024,
    allowedHosts: parseAllowList(allow).entries,
    ...extra,
  });
  const post = (url: string, opts = options(), resolve?: Parameters<typeof postWebhook>[5]) =>
    postWebhook(new URL(url), { 'content-type': 'application/json' }, '{}', opts, agents, resolve);

  it('posts to an allow-listed loopback receiver and reports its status', async () => {
    handler = (_req, res) => {
      res.statusCode = 204;
      res.end();
    };
    const result = await post(`http://127.0.0.1:${port}/hook`);
    expect(result).toMatchObject({ statusCode: 204, error: null, refused: false });
    expect(hits).toEqual(['/hook']);
  });

  it('refuses loopback that is not allow-listed (another port), sending nothing', async () => {
    const connect = jest.spyOn(Socket.prototype, 'connect');
    const result = await post(`http://127.0.0.1:${port}/x`, options('127.0.0.1:1'));
    expect(result.refused).toBe(true);
    expect(result.error).toContain('loopback');
    expect(connect).not.toHaveBeenCalled();
    expect(hits).toEqual([]);
  });

  it('refuses 169.254.169.254 before any socket exists, even with loopback allowed', async () => {
    const connect = jest.spyOn(Socket.prototype, 'connect');
    const result = await post('http://169.254.169.254/latest/meta-data/', options('127.0.0.1'));
    expect(result).toMatchObject({ statusCode: null, refused: true });
    expect(result.error).toContain('metadata');
    expect(connect).not.toHaveBeenCalled();
  });

  it('refuses a name that resolves to a metadata or private address, at connect time', async () => {
    const fakeDns = ((
      _host: string,
      _opts: unknown,
      callback: (error: null, addresses: { address: string; family: number }[]) => void,
    ) =>
      callback(null, [
        { address: '169.254.169.254', family: 4 },
        { address: 'fd00:ec2::254', family: 6 },
      ])) as any;
    // The socket exists, but the lookup hands it no address: the error comes from the guard.
    const result = await post('http://innocent.example/hook', options('127.0.0.1'), fakeDns);
    expect(result.refused).toBe(true);
    expect(result.error).toBe(
      'destination not allowed (a link-local (cloud metadata) address; see WEBHOOK_ALLOWED_HOSTS)',
    );
    expect(result.error).not.toMatch(/innocent|169\.254/);
  });

  it('connects a name only to the addresses the guard lets through', async () => {
    const fakeDns = ((
      _host: string,
      _opts: unknown,
      callback: (error: null, addresses: { address: string; family: number }[]) => void,
    ) => callback(null, [{ address: '127.0.0.1', family: 4 }])) as any;
    // Refused first: a keep-alive socket, once connected, is reused for the same host and port.
    expect(
      (await post(`http://hooks.test:${port}/b`, options('10.0.0.0/8'), fakeDns)).refused,
    ).toBe(true);
    expect(
      (await post(`http://hooks.test:${port}/c`, options('hooks.test'), fakeDns)).statusCode,
    ).toBe(200);
    expect(hits).toEqual(['/c']);
  });

  it('does not follow redirects', async () => {
    handler = (req, res) => {
      if (req.url === '/moved') {
        res.writeHead(302, { location: `http://127.0.0.1:${port}/target` });
        res.end();
      } else res.end('reached');
    };
    const result = await post(`http://127.0.0.1:${port}/moved`);
    expect(result.statusCode).toBe(302);
    expect(hits).toEqual(['/moved']);
  });

  it('cuts off a receiver that never answers at the total timeout', async () => {
    handler = () => undefined;
    const result = await post(
      `http://127.0.0.1:${port}/hang`,
      options(undefined, { timeoutMs: 300 }),
    );
    expect(result.statusCode).toBeNull();
    expect(result.error).toContain('timed out after 300 ms');
    expect(result.durationMs).toBeGreaterThanOrEqual(290);
    expect(result.durationMs).toBeLessThan(2000);
  });

  it('stops reading a huge answer at the cap', async () => {
    handler = (_req, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const timer = setInterval(() => res.write(chunk), 5);
      res.on('close', () => clearInterval(timer));
    };
    const result = await post(`http://127.0.0.1:${port}/huge`);
    expect(result).toMatchObject({ statusCode: 200, error: null });
    expect(result.durationMs).toBeLessThan(1500);
  });

  it('reports a refused connection as an error', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const result = await post(`http://127.0.0.1:${deadPort}/`, options('127.0.0.1'));
    expect(result).toMatchObject({
      statusCode: null,
      error: 'connection refused',
      refused: false,
      unreachable: true,
    });
  });

  it('says a name did not resolve without naming it, and parks it as unreachable', async () => {
    const failing = ((host: string, _opts: unknown, callback: (error: Error) => void) =>
      callback(
        Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }),
      )) as any;
    const result = await post('http://foo.internal/hook', options(), failing);
    expect(result).toMatchObject({ error: 'DNS lookup failed', refused: false, unreachable: true });
  });
});

describe('deliveryError', () => {
  const withCode = (message: string, code?: string) => Object.assign(new Error(message), { code });

  it.each([
    ['connect ECONNREFUSED 10.0.0.5:80', 'ECONNREFUSED', 'connection refused'],
    ['getaddrinfo ENOTFOUND foo.internal', 'ENOTFOUND', 'DNS lookup failed'],
    ['getaddrinfo EAI_AGAIN foo.internal', 'EAI_AGAIN', 'DNS lookup failed (temporary)'],
    ['connect EHOSTUNREACH 10.9.8.7:443', 'EHOSTUNREACH', 'host unreachable'],
    ['read ECONNRESET', 'ECONNRESET', 'connection reset by the endpoint'],
    [
      "Hostname/IP does not match certificate's altnames: Host: db.internal. is not in the cert's altnames: DNS:x",
      'ERR_TLS_CERT_ALTNAME_INVALID',
      'TLS error (ERR_TLS_CERT_ALTNAME_INVALID)',
    ],
    ['certificate has expired', 'CERT_HAS_EXPIRED', 'TLS error (CERT_HAS_EXPIRED)'],
    [
      'Parse Error: Invalid header value char',
      'HPE_INVALID_HEADER_TOKEN',
      'invalid HTTP answer (HPE_INVALID_HEADER_TOKEN)',
    ],
    ['something at 10.1.2.3', 'ESOMETHING', 'request failed (ESOMETHING)'],
    ['socket at 10.1.2.3 broke', undefined, 'request failed'],
    ['weird 10.1.2.3', 'not a code 10.1.2.3', 'request failed'],
  ])('%s → %s', (message, code, expected) => {
    expect(deliveryError(withCode(message, code))).toBe(expected);
  });

  it("keeps Kiln's own time-outs and refusals, and nothing of a refusal's host or address", () => {
    expect(deliveryError(withCode('timed out after 300 ms', 'KILN_TIMEOUT'))).toBe(
      'timed out after 300 ms',
    );
    expect(deliveryError(withCode('connect timed out after 5000 ms', 'KILN_CONNECT_TIMEOUT'))).toBe(
      'connect timed out after 5000 ms',
    );
    const allowNothing = parseAllowList('').entries;
    const why = refusal(allowNothing, 'foo.internal', 80, '10.1.2.3')!;
    expect(why).toBe('destination not allowed (a private address; see WEBHOOK_ALLOWED_HOSTS)');
    expect(deliveryError(new RefusedDestination(why))).toBe(why);
    expect(deliveryError(new RefusedDestination('foo.internal: no address'))).toBe(
      'destination not allowed',
    );
    expect(refusal(allowNothing, 'hooks.example', 443, '93.184.216.34')).toBeNull();
  });
});
