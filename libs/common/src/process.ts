import { LogFormat, kilnLogger, logFailure } from './log';

type Closable = { close(): Promise<void> };

/**
 * Boots one of Kiln's processes: a bad configuration or a failed start prints one clear line and
 * exits non-zero instead of a stack trace, in `format` (config's earlyLogFormat). Nest's shutdown
 * hooks handle SIGTERM/SIGINT.
 */
export function runProcess(name: string, format: LogFormat, boot: () => Promise<Closable>): void {
  // The logger of the start, until boot sets the configured one (the configuration may be what fails).
  kilnLogger(name, 'log', format);
  process.on('unhandledRejection', (reason) => {
    logFailure(`[kiln ${name}] unhandled rejection: ${String((reason as Error)?.stack ?? reason)}`);
  });
  boot().catch((error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    logFailure(`[kiln ${name}] cannot start: ${message}`);
    process.exit(error instanceof Error && error.name === 'ConfigError' ? 2 : 1);
  });
}
