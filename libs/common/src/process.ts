import type { LogLevel } from '@nestjs/common';
import { RedactingLogger, redactSecrets } from './redact';

type Closable = { close(): Promise<void> };

/**
 * Boots one of Kiln's processes: a bad configuration or a failed start prints one clear line and
 * exits non-zero instead of a stack trace. Nest's shutdown hooks handle SIGTERM/SIGINT.
 */
export function runProcess(name: string, boot: () => Promise<Closable>): void {
  process.on('unhandledRejection', (reason) => {
    console.error(
      redactSecrets(
        `[kiln ${name}] unhandled rejection: ${String((reason as Error)?.stack ?? reason)}`,
      ),
    );
  });
  boot().catch((error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    console.error(redactSecrets(`[kiln ${name}] cannot start: ${message}`));
    process.exit(error instanceof Error && error.name === 'ConfigError' ? 2 : 1);
  });
}

const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

/** Nest's logger levels up to and including `level`. */
export function logLevels(level: 'error' | 'warn' | 'log' | 'debug'): LogLevel[] {
  return LEVELS.slice(0, LEVELS.indexOf(level) + 1);
}

/** The logger of Kiln's processes: Nest's, up to `level`, with secrets redacted. */
export function kilnLogger(level: 'error' | 'warn' | 'log' | 'debug'): RedactingLogger {
  return new RedactingLogger({ logLevels: logLevels(level) });
}
