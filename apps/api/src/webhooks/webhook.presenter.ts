import { formatTime } from '@kiln/common';
import type { CodeTrigger, DeliveryRecord, Webhook } from '@kiln/webhooks';

/** A subscription; its secret only when it was just made. */
export function webhookJson(webhook: Webhook, withSecret = false) {
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
