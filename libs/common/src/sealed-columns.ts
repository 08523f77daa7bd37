/**
 * What each sealed column's values are bound to (the `context` of SecretBox): the services that
 * write and read them and `npm run reseal` use these, so they must never change for a column
 * (a changed context no longer opens what is stored).
 */
export const sealedContext = {
  /** `registry_credentials.secret`, the JSON of a registry login's password and email. */
  registryCredential: (projectId: string, serverAddress: string) =>
    `registry-credential\n${projectId}\n${serverAddress}`,
  /** `webhooks.secret`. */
  webhookSecret: (projectId: string, webhookId: string) =>
    `webhook-secret\n${projectId}\n${webhookId}`,
  /** `webhooks.previous_secret`. */
  webhookPreviousSecret: (projectId: string, webhookId: string) =>
    `webhook-previous-secret\n${projectId}\n${webhookId}`,
  /** `project_webhook_secrets.secret`. */
  projectWebhookSecret: (projectId: string) => `project-webhook-secret\n${projectId}`,
  /** `log_drains.secret` (HTTPS drains). */
  logDrainSecret: (projectId: string, drainId: string) =>
    `log-drain-secret\n${projectId}\n${drainId}`,
  /** `code_triggers.hmac_secret`. */
  triggerHmacSecret: (projectId: string, triggerId: string) =>
    `trigger-hmac-secret\n${projectId}\n${triggerId}`,
  /** `codes.env_vars` and `code_revisions.env_vars` (a code's revisions share it). */
  codeEnvVars: (projectId: string, codeId: string) => `code-env-vars\n${projectId}\n${codeId}`,
};
