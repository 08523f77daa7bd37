import { formatTime } from '@kiln/common';
import { FRESH_ENDPOINT } from '@kiln/webhooks';
import type { CodeTrigger, DeliveryRecord, Webhook, WebhookView } from '@kiln/webhooks';

/** A subscription made just now: closed circuit, nothing pending, and its secret. */
export function newWebhookJson(webhook: Webhook) {
  return webhookJson({ webhook, endpoint: FRESH_ENDPOINT }, true);
}

/**
 * A subscription with its endpoint's circuit (`closed`, `open` while parked, `disabled`), its
 * failures in a row, the next probe of an open circuit, the last error, and its backlog: pending
 * deliveries and those dropped beyond `KILN_WEBHOOK_MAX_PENDING`. Its secret only when just made.
 */
export function webhookJson({ webhook, endpoint }: WebhookView, withSecret = false) {
  return {
    id: webhook.id,
    url: webhook.url,
    events: webhook.events,
    code_name: webhook.codeName,
    enabled: webhook.enabled,
    disabled_reason: webhook.disabledReason,
    description: webhook.description,
    created_at: formatTime(webhook.createdAt),
    updated_at: formatTime(webhook.updatedAt),
    circuit: endpoint.circuit,
    failures: endpoint.failures,
    next_probe_at: endpoint.nextProbeAt ? formatTime(endpoint.nextProbeAt) : null,
    last_error: endpoint.lastError,
    pending: endpoint.pending,
    dropped: endpoint.dropped,
    ...(withSecret ? { secret: webhook.secret } : {}),
  };
}

export function deliveryJson(delivery: DeliveryRecord) {
  return {
    id: delivery.id,
    webhook_id: delivery.webhookId,
    message_id: delivery.messageId,
    event_type: delivery.eventType,
    task_id: delivery.taskId,
    ...(delivery.scheduleId ? { schedule_id: delivery.scheduleId } : {}),
    attempt: delivery.attempt,
    status_code: delivery.statusCode,
    error: delivery.error,
    duration_ms: delivery.durationMs,
    state: delivery.state,
    created_at: formatTime(delivery.createdAt),
    next_attempt_at: delivery.nextAttemptAt ? formatTime(delivery.nextAttemptAt) : null,
  };
}

/** A trigger as listed: its URL without the secret, which is shown only when it is made. */
export function triggerJson(trigger: CodeTrigger, codeName: string, baseUrl: string) {
  return {
    id: trigger.id,
    code_id: trigger.codeId,
    code_name: codeName,
    url: triggerUrl(baseUrl, trigger),
    hmac_header: trigger.hmacHeader,
    hmac_prefix: trigger.hmacPrefix,
    hmac_encoding: trigger.hmacEncoding,
    cluster: trigger.cluster,
    created_at: formatTime(trigger.createdAt),
  };
}

export function triggerUrl(baseUrl: string, trigger: CodeTrigger): string {
  return `${baseUrl}/2/projects/${trigger.projectId}/triggers/${trigger.id}`;
}
