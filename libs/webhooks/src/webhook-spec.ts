import { AllowEntry, FieldReader, JsonObject, KilnException, parseWebhookUrl } from '@kiln/common';

export const WEBHOOK_EVENTS = [
  'task.queued',
  'task.running',
  'task.complete',
  'task.error',
  'task.timeout',
  'task.killed',
  'task.cancelled',
  'schedule.complete',
] as const;

export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** What a create or update asks for; undefined fields are left as they are (update). */
export interface WebhookSpec {
  url?: string;
  events?: WebhookEvent[];
  codeName?: string | null;
  enabled?: boolean;
  description?: string;
}

/** Parses a create (`partial` false: `url` required) or a PATCH body. */
export function parseWebhookSpec(
  body: JsonObject,
  allowed: readonly AllowEntry[],
  partial: boolean,
): WebhookSpec {
  const read = new FieldReader(body);
  const spec: WebhookSpec = {};
  const url = partial ? read.string('url') : read.requiredString('url');
  if (url !== undefined) spec.url = parseWebhookUrl(url, allowed);
  if (read.has('events')) spec.events = parseEvents(body.events);
  else if (!partial) spec.events = [...WEBHOOK_EVENTS];
  if (body.code_name === null) spec.codeName = null;
  else {
    const codeName = read.string('code_name', 255);
    if (codeName !== undefined) spec.codeName = codeName === '' ? null : codeName;
  }
  spec.enabled = read.boolean('enabled') ?? (partial ? undefined : true);
  spec.description = read.string('description', 1024) ?? (partial ? undefined : '');
  return spec;
}

function parseEvents(value: unknown): WebhookEvent[] {
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) {
    throw KilnException.badRequest('events must be an array of event names');
  }
  if (value.length === 0) throw KilnException.badRequest('events must name at least one event');
  const unknown = (value as string[]).filter(
    (item) => !(WEBHOOK_EVENTS as readonly string[]).includes(item),
  );
  if (unknown.length > 0) {
    throw KilnException.badRequest(
      `unknown event ${unknown.map((item) => `"${item}"`).join(', ')}: use ${WEBHOOK_EVENTS.join(', ')}`,
    );
  }
  return [...new Set(value as WebhookEvent[])];
}
