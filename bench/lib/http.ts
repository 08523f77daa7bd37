import { Agent, request as httpRequest } from 'node:http';

/** Keep-alive connections, as a real client would hold them. */
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

export interface Answer {
  status: number;
  body: any;
  text: string;
  /** Milliseconds from sending the request to the last byte of the answer. */
  ms: number;
}

export async function request(
  method: string,
  url: string,
  options: { token?: string; json?: unknown; body?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `OAuth ${options.token}`;
  const body =
    options.body ?? (options.json === undefined ? undefined : JSON.stringify(options.json));
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  const started = performance.now();
  return new Promise<Answer>((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        if ((res.headers['content-type'] ?? '').includes('application/json')) {
          try {
            parsed = JSON.parse(text);
          } catch {
            // keep the text
          }
        }
        resolve({
          status: res.statusCode ?? 0,
          body: parsed,
          text,
          ms: performance.now() - started,
        });
      });
    });
    req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${url}: no answer in 60 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** A Kiln API client bound to one token. */
export class Api {
  constructor(
    readonly baseUrl: string,
    readonly token: string,
  ) {}

  async call(method: string, path: string, json?: unknown, body?: string): Promise<Answer> {
    return request(method, `${this.baseUrl}${path}`, { token: this.token, json, body });
  }

  /** Like `call`, but anything other than 200 is an error. */
  async ok(method: string, path: string, json?: unknown, body?: string): Promise<Answer> {
    const answer = await this.call(method, path, json, body);
    if (answer.status !== 200) {
      throw new Error(`${method} ${path}: ${answer.status} ${answer.text.slice(0, 500)}`);
    }
    return answer;
  }
}

export function closeConnections(): void {
  agent.destroy();
}
