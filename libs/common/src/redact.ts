import { ConsoleLogger, LogLevel } from '@nestjs/common';

/** What a log line must never hold, and what it shows instead. */
const SECRETS: [RegExp, string][] = [
  // An Authorization header, as `authorization: …` or a JSON/inspect `"authorization": "…"`.
  [/(authorization["']?\s*[:=]\s*["']?)[^"'\n,}]*/gi, '$1[redacted]'],
  [/\b(OAuth|Bearer|Basic)\s+[\w.~+/=-]{6,}/g, '$1 [redacted]'],
  // API tokens (kiln_…), webhook signing secrets (whsec_…), sealed values (v2.<kid>.…).
  [/\bkiln_[\w-]{6,}/g, 'kiln_[redacted]'],
  [/\bwhsec_[\w+/=-]{6,}/g, 'whsec_[redacted]'],
  [/\bv2\.[0-9a-f]{8}\.[\w-]+\.[\w-]*\.[\w-]+/g, '[sealed]'],
  // Secrets in URLs: user:password@ and ?secret= / ?token= / ?oauth= / ?password=.
  [/(\b[a-z][a-z0-9+.-]*:\/\/)[^/?#\s@]+@/gi, '$1[redacted]@'],
  [/([?&](?:secret|token|oauth|password|access_token)=)[^&#\s"']*/gi, '$1[redacted]'],
  // Quoted values of fields that hold a secret or a task's input, as JSON or util.inspect print
  // them (`"token":"…"`, `payload: '…'`, `"env_vars":{…}`).
  [
    /(?<!\w)(["']?)(token|secret|password|oauth|env_vars|payload)\1(\s*[:=]\s*)(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\{[^{}]*\})/gi,
    '$1$2$1$3"[redacted]"',
  ],
];

/** `text` with tokens, secrets and Authorization headers replaced (see SECRETS). */
export function redactSecrets(text: string): string {
  return SECRETS.reduce((out, [pattern, by]) => out.replace(pattern, by), text);
}

/**
 * Nest's console logger, with every message and stack trace passed through redactSecrets: an
 * error that quotes a URL or a header does not put a secret in the log.
 */
export class RedactingLogger extends ConsoleLogger {
  protected override stringifyMessage(message: unknown, logLevel: LogLevel): string {
    return redactSecrets(String(super.stringifyMessage(message, logLevel)));
  }

  protected override printStackTrace(stack: string): void {
    super.printStackTrace(redactSecrets(stack));
  }
}
