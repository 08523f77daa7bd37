import Ajv2020, { ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { openApiDocument } from '../../apps/api/src/openapi/document';

/**
 * Holds the API to its OpenAPI document (`GET /openapi.json`): every JSON answer `call()`
 * receives must match the document's schema for its method, path template and status. So the
 * e2e suites, which drive every route, keep the document true as the API changes.
 */

interface Response {
  $ref?: string;
  content?: Record<string, unknown>;
}
type Operations = Record<string, { responses: Record<string, Response> }>;

interface Template {
  path: string;
  pattern: RegExp;
  /** Segments without a parameter: `/webhooks/task_secret` beats `/webhooks/{webhookId}`. */
  literals: number;
}

const SCHEMA_ID = 'kiln-openapi';
const document = openApiDocument();
const paths = document.paths as Record<string, Operations>;
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema(document, SCHEMA_ID);

const templates: Template[] = Object.keys(paths).map((path) => ({
  path,
  pattern: new RegExp(`^${path.replace(/\{\w+\}/g, '[^/]+')}$`),
  literals: path.split('/').filter((part) => !part.startsWith('{')).length,
}));

/** JSON pointer escaping of one token (`/` and `~`). */
const token = (part: string): string => part.replace(/~/g, '~0').replace(/\//g, '~1');

/** The most concrete template matching `path` (its query left out), or undefined. */
function templateOf(path: string): string | undefined {
  const bare = path.split('?')[0];
  const matching = templates.filter((template) => template.pattern.test(bare));
  matching.sort((a, b) => b.literals - a.literals);
  return matching[0]?.path;
}

function validator(pointer: string): ValidateFunction {
  const found = ajv.getSchema(`${SCHEMA_ID}#${pointer}`);
  if (!found) throw new Error(`the OpenAPI document has no schema at ${pointer}`);
  return found;
}

/**
 * What is wrong with a JSON answer, by the document, or undefined when it matches. An answer
 * to a path or method the API has not (a 404 from the router) must still be `{"msg"}`.
 */
export function answerProblem(
  method: string,
  path: string,
  status: number,
  body: unknown,
): string | undefined {
  const template = templateOf(path);
  const operation = template ? paths[template][method.toLowerCase()] : undefined;
  let pointer: string;
  if (!template || !operation) {
    if (status < 400) return `${method} ${path} answered ${status}: the document has no such route`;
    pointer = '/components/schemas/Error';
  } else {
    let response = operation.responses[String(status)];
    pointer = `/paths/${token(template)}/${method.toLowerCase()}/responses/${status}`;
    if (!response) return `${method} ${template} answered ${status}, a status it does not document`;
    if (response.$ref) {
      pointer = response.$ref.slice(1);
      response = (document.components as { responses: Record<string, Response> }).responses[
        response.$ref.split('/').pop() as string
      ];
    }
    if (!response.content?.['application/json']) {
      const types = Object.keys(response.content ?? {}).join(', ');
      return `${method} ${template} answered ${status} in JSON where the document says ${types}`;
    }
    pointer += '/content/application~1json/schema';
  }
  const validate = validator(pointer);
  if (validate(body)) return undefined;
  const shown = JSON.stringify(body);
  return (
    `${method} ${template ?? path} answered ${status} ${shown.length > 600 ? `${shown.slice(0, 600)}…` : shown}, ` +
    `which its OpenAPI schema (${pointer}) refuses: ${ajv.errorsText(validate.errors, { dataVar: 'answer' })}`
  );
}
