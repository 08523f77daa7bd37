import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { answerProblem } from '../../../../test/support/answer-check';
import { call } from '../../../../test/support/kiln';

// The e2e suites' check of every JSON answer against the document (test/support/kiln.ts, call()).
describe('the answer check', () => {
  const project = '/2/projects/0123456789abcdef01234567';

  it('lets through an answer as documented', () => {
    expect(answerProblem('GET', '/healthz', 200, { status: 'ok' })).toBeUndefined();
    expect(answerProblem('GET', `${project}/tasks/x?page=2`, 400, { msg: 'no' })).toBeUndefined();
    const quotas = { msg: 'Updated', quotas: { queued_tasks: 5 }, overrides: {} };
    expect(answerProblem('PUT', `${project}/quotas`, 200, quotas)).toBeUndefined();
  });

  it('prefers a literal path to a template (webhooks/task_secret, not webhooks/{webhookId})', () => {
    expect(answerProblem('GET', `${project}/webhooks/task_secret`, 200, { secret: 's' })).toBe(
      undefined,
    );
  });

  it('names the route, the answer and what differs', () => {
    expect(answerProblem('PUT', `${project}/quotas`, 200, { msg: 'Updated', quotas: {} })).toMatch(
      /^PUT \/2\/projects\/\{projectId\}\/quotas answered 200 .*must have required property 'overrides'/,
    );
    expect(answerProblem('GET', '/healthz', 200, { status: 'fine' })).toMatch(/allowed values/);
    expect(answerProblem('GET', `${project}/tasks`, 404, { msg: 'x', extra: 1 })).toMatch(
      /additional properties/,
    );
  });

  it('refuses a status the route does not document, and JSON where it answers text', () => {
    expect(answerProblem('GET', `${project}/tasks`, 504, { msg: 'x' })).toMatch(
      /does not document/,
    );
    expect(answerProblem('GET', `${project}/tasks/${'a'.repeat(24)}/log`, 200, {})).toMatch(
      /in JSON where the document says text\/plain/,
    );
  });

  it('holds answers of paths the API has not to {"msg"}, and refuses a success there', () => {
    expect(answerProblem('GET', '/nowhere', 404, { msg: 'Cannot GET /nowhere' })).toBeUndefined();
    expect(answerProblem('GET', '/nowhere', 404, { error: 'x' })).toMatch(
      /required property 'msg'/,
    );
    expect(answerProblem('GET', '/nowhere', 200, {})).toMatch(/no such route/);
  });

  it('fails call() of the e2e suites on an answer the document refuses', async () => {
    let answer: unknown = { status: 'ok' };
    const server = http.createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(answer));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      expect((await call('GET', '/healthz', { url })).body).toEqual({ status: 'ok' });
      answer = { status: 'ok', uptime: 3 };
      await expect(call('GET', '/healthz', { url })).rejects.toThrow(
        /^Answer not as the OpenAPI document says: GET \/healthz answered 200 .*additional properties/,
      );
    } finally {
      server.close();
    }
  });
});
