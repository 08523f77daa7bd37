import { NotJson, ROUTES, Route } from './routes';
import { SCHEMAS, Schema, ref } from './schemas';

/** The answers any token-guarded route may give besides its own (docs/api.md, "Request limits"). */
const USUAL_ERRORS: Record<number, string> = {
  400: 'Bad input; `msg` names the field.',
  401: 'No token, or one that is unknown, revoked or expired.',
  403: "The token's role does not allow this, a cluster is not granted, or a request signed in by the dashboard's cookie lacks its `X-Kiln-CSRF` header.",
  404: 'No such resource in this project.',
  408: 'The request came too slowly.',
  413: "The body is past the route's cap.",
  429: 'A quota or a rate limit (then with `Retry-After`).',
  500: 'Unexpected; `msg` holds a reference for the logs and nothing else.',
  503: 'Postgres or Redis unreachable: retry.',
};

/** What a public route may still answer: it reads no token, but the server's limits apply. */
const PUBLIC_ERRORS = [400, 401, 404, 408, 413, 429, 500, 503];

/** `Authorization: OAuth <token>` (IronWorker's), `Bearer <token>`, or `?oauth=<token>`. */
const SECURITY_SCHEMES = {
  OAuth: {
    type: 'apiKey',
    in: 'header',
    name: 'Authorization',
    description: "IronWorker's header: `Authorization: OAuth <token>`.",
  },
  Bearer: { type: 'http', scheme: 'bearer' },
  OAuthQuery: { type: 'apiKey', in: 'query', name: 'oauth' },
  Session: {
    type: 'apiKey',
    in: 'cookie',
    name: 'kiln_session',
    description:
      "The dashboard's session (`POST /ui/session`); requests other than GET/HEAD also send `X-Kiln-CSRF`.",
  },
};
const TOKEN_SECURITY = [{ OAuth: [] }, { Bearer: [] }, { OAuthQuery: [] }, { Session: [] }];

const isNotJson = (ok: Route['ok']): ok is NotJson => typeof ok.mediaType === 'string';

/** The path parameters of a template: `…Id` ones are Kiln ids, the others names. */
function pathParameters(path: string): Schema[] {
  return [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({
    name,
    in: 'path',
    required: true,
    schema: name.endsWith('Id') ? ref('Id') : { type: 'string' },
  }));
}

function queryParameters(route: Route): Schema[] {
  return Object.entries(route.query ?? {}).map(([name, schema]) => ({
    name,
    in: 'query',
    required: route.requiredQuery?.includes(name) ?? false,
    schema,
  }));
}

function requestBody(body: NonNullable<Route['body']>): Schema {
  if ('raw' in body && Array.isArray(body.raw)) {
    const content = Object.fromEntries(
      (body.raw as string[]).map((type) => [type, { schema: { type: 'string' } }]),
    );
    return { description: body.description, required: false, content };
  }
  if ('multipart' in body) {
    return {
      required: true,
      content: {
        'multipart/form-data': { schema: body.multipart },
        'application/json': { schema: ref('CodeSpec') },
      },
    };
  }
  return { required: false, content: { 'application/json': { schema: body } } };
}

const jsonAnswer = (description: string, schema: Schema): Schema => ({
  description,
  content: { 'application/json': { schema } },
});

function responses(route: Route): Record<string, Schema> {
  const ok = isNotJson(route.ok)
    ? { description: 'OK', content: { [route.ok.mediaType]: { schema: route.ok.schema ?? {} } } }
    : jsonAnswer('OK', route.ok);
  const errors = route.access === 'public' ? PUBLIC_ERRORS : Object.keys(USUAL_ERRORS).map(Number);
  const answers: Record<string, Schema> = { 200: ok };
  for (const status of errors) answers[status] = { $ref: `#/components/responses/E${status}` };
  for (const [status, schema] of Object.entries(route.also ?? {})) {
    const description = schema.description;
    answers[status] = jsonAnswer(
      typeof description === 'string' ? description : USUAL_ERRORS[Number(status)],
      schema,
    );
  }
  return answers;
}

function operation(route: Route): Schema {
  const who =
    route.access === 'admin'
      ? 'The admin token only.'
      : route.access === 'public'
        ? 'No token needed.'
        : `A project token with the \`${route.role ?? (route.method === 'get' ? 'read' : 'manage')}\` role at least, or the admin token.`;
  return {
    tags: [route.tag],
    summary: route.summary,
    description: who,
    operationId: route.operationId ?? operationId(route),
    security: route.access === 'public' ? [] : TOKEN_SECURITY,
    parameters: [...pathParameters(route.path), ...queryParameters(route)],
    ...(route.body ? { requestBody: requestBody(route.body) } : {}),
    responses: responses(route),
  };
}

/** `get /2/projects/{projectId}/codes/{codeId}/stats` → `getProjectsCodesStats`. */
function operationId(route: Route): string {
  const words = route.path
    .split('/')
    .filter((part) => part !== '' && part !== '2' && !part.startsWith('{'))
    .map((part) => part.replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string = '') => c.toUpperCase()));
  const byId = route.path.endsWith('}') ? 'ById' : '';
  return [route.method, ...words.map((w) => w[0].toUpperCase() + w.slice(1)), byId].join('');
}

/**
 * The OpenAPI 3.1 document of the whole API, served at `GET /openapi.json` and read by the e2e
 * suites' answer check. Built from `ROUTES` and the shared `SCHEMAS` each time (a few ms).
 */
export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, Schema>> = {};
  for (const route of ROUTES) {
    paths[route.path] ??= {};
    paths[route.path][route.method] = operation(route);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Kiln API',
      version: '2',
      description:
        "IronWorker's REST API v2 as Kiln speaks it, with Kiln's extensions (docs/api.md). " +
        'Success is 200 JSON unless shown; every error is `{"msg": "…"}`.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    jsonSchemaDialect: 'https://spec.openapis.org/oas/3.1/dialect/base',
    tags: [...new Set(ROUTES.map((route) => route.tag))].map((name) => ({ name })),
    paths,
    components: {
      schemas: SCHEMAS,
      securitySchemes: SECURITY_SCHEMES,
      responses: Object.fromEntries(
        Object.entries(USUAL_ERRORS).map(([status, text]) => [
          `E${status}`,
          jsonAnswer(text, ref('Error')),
        ]),
      ),
    },
  };
}
