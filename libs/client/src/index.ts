/** `@kiln/client`: a typed client for Kiln's API, on Node's own `fetch`. */
export { Kiln } from './kiln';
export type { KilnOptions } from './kiln';
export { KilnError, KilnTimeoutError } from './errors';
export {
  DEFAULT_URL,
  configFile,
  processEnvironment,
  resolveSettings,
  saveSettings,
} from './settings';
export type { Environment, KilnSettings, SettingOrigins, SettingSources } from './settings';
export { Tasks } from './tasks';
export { Codes } from './codes';
export { Schedules } from './schedules';
export { Webhooks } from './webhooks';
export { LogDrains } from './log-drains';
export { Triggers } from './triggers';
export { Credentials } from './credentials';
export { Tokens } from './tokens';
export { WebhookVerificationError, verifyWebhook } from './verify';
export type { VerifyOptions, WebhookHeaders } from './verify';
export * from './types';
export * from './limits';
