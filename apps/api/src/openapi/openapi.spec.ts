import 'reflect-metadata';
import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { execFileSync } from 'node:child_process';
import { QUOTA_FIELDS } from '@kiln/projects';
import { TASK_STATUSES as SERVER_TASK_STATUSES } from '@kiln/tasks';
import { WEBHOOK_EVENTS as SERVER_WEBHOOK_EVENTS } from '@kiln/webhooks';
import { ApiModule } from '../api.module';
import { openApiDocument } from './document';
import { QUOTA_NAMES, SCHEMAS, TASK_STATUSES } from './schemas';

type Handler = (...args: unknown[]) => unknown;

/** `get /2/projects/{projectId}/tasks`, for every handler of every controller the app registers. */
function registeredRoutes(): string[] {
  const controllers = Reflect.getMetadata('controllers', ApiModule) as (new (
    ...args: never[]
  ) => object)[];
  const found: string[] = [];
  for (const controller of controllers) {
    const base = Reflect.getMetadata(PATH_METADATA, controller) as string;
    for (const key of Object.getOwnPropertyNames(controller.prototype)) {
      const handler = (controller.prototype as Record<string, Handler>)[key];
      const path = key === 'constructor' ? undefined : Reflect.getMetadata(PATH_METADATA, handler);
      if (typeof path !== 'string') continue;
      const method = RequestMethod[Reflect.getMetadata(METHOD_METADATA, handler) as number];
      const template = `/${[base, path].filter((part) => part && part !== '/').join('/')}`
        .replace(/\/+/g, '/')
        .replace(/:(\w+)/g, '{$1}');
      found.push(`${method.toLowerCase()} ${template}`);
    }
  }
  return found.sort();
}

function documentedRoutes(): string[] {
  const paths = openApiDocument().paths as Record<string, Record<string, unknown>>;
  return Object.entries(paths)
    .flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method} ${path}`))
    .sort();
}

/**
 * What `@seriousme/openapi-schema-validator` (it bundles the OpenAPI 3.1 schema and its JSON
 * Schema dialect) says of `document`. It is an ES module, which this CommonJS test cannot
 * import: it runs in a child Node process, offline.
 */
function validate(document: unknown): { valid: boolean; errors?: unknown } {
  const script = `
    import { Validator } from '@seriousme/openapi-schema-validator';
    let text = '';
    for await (const chunk of process.stdin) text += chunk;
    const result = await new Validator().validate(JSON.parse(text));
    process.stdout.write(JSON.stringify(result));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    input: JSON.stringify(document),
    cwd: __dirname,
  });
  return JSON.parse(out.toString()) as { valid: boolean; errors?: unknown };
}

describe('the OpenAPI document', () => {
  it('is valid OpenAPI 3.1', () => {
    const document = openApiDocument();
    expect(document.openapi).toBe('3.1.0');
    expect(validate(document)).toMatchObject({ valid: true });
  });

  it('is found invalid when it is (the validator is not a check that cannot fail)', () => {
    const document = openApiDocument();
    const broken = {
      ...document,
      paths: { '/x': { get: { responses: { 200: { content: 1 } } } } },
    };
    expect(validate(broken).valid).toBe(false);
  });

  // A new route is an entry of `ROUTES` (routes.ts) in its area's list.
  it('describes every route the app registers, and no other', () => {
    const registered = registeredRoutes();
    expect(registered.length).toBeGreaterThan(60);
    expect(registered).toContain('get /2/projects/{projectId}/tasks/{taskId}');
    expect(documentedRoutes()).toEqual(registered);
  });

  it('describes every parameter of each path template', () => {
    const paths = openApiDocument().paths as Record<
      string,
      Record<string, { parameters: { name: string; in: string }[] }>
    >;
    for (const [path, operations] of Object.entries(paths)) {
      const names = [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) => name);
      for (const operation of Object.values(operations)) {
        const inPath = operation.parameters.filter((p) => p.in === 'path').map((p) => p.name);
        expect({ path, inPath }).toEqual({ path, inPath: names });
      }
    }
  });

  it("keeps the server's lists: task statuses, webhook events, quota names", () => {
    expect(TASK_STATUSES).toEqual([...SERVER_TASK_STATUSES]);
    expect(SCHEMAS.TaskStatus.enum).toEqual([...SERVER_TASK_STATUSES]);
    expect(SCHEMAS.WebhookEvent.enum).toEqual([...SERVER_WEBHOOK_EVENTS]);
    expect([...QUOTA_NAMES].sort()).toEqual(Object.values(QUOTA_FIELDS).sort());
  });

  it('resolves every $ref it holds', () => {
    const document = openApiDocument();
    const refs: string[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(walk);
      else if (node && typeof node === 'object') {
        for (const [key, value] of Object.entries(node)) {
          if (key === '$ref' && typeof value === 'string') refs.push(value);
          else walk(value);
        }
      }
    };
    walk(document);
    const resolve = (pointer: string): unknown =>
      pointer
        .slice(2)
        .split('/')
        .reduce<unknown>(
          (at, part) => (at as Record<string, unknown> | undefined)?.[part],
          document,
        );
    expect(refs.length).toBeGreaterThan(50);
    expect(refs.filter((target) => resolve(target) === undefined)).toEqual([]);
  });

  it('gives every operation a unique operationId (generated clients name methods by it)', () => {
    const paths = openApiDocument().paths as Record<
      string,
      Record<string, { operationId: string }>
    >;
    const ids = Object.values(paths).flatMap((ops) => Object.values(ops).map((o) => o.operationId));
    expect(new Set(ids).size).toBe(ids.length);
  });
});
