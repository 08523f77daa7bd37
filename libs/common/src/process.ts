import { kilnLogger, logFailure } from './log';

type Closable = { close(): Promise<void> };

/**
 * Boots one of Kiln's processes: a bad configuration or a failed start prints one clear line and
 * exits non-zero instead of a stack trace. Nest's shutdown hooks handle SIGTERM/SIGINT.
 */
export function runProcess(name: string, boot: () => Promise<Closable>): void {
  // Until the configuration is read (it may be what fails), lines are JSON unless the operator
  // asked for pretty ones: read here directly, as the configuration is not there yet.
  kilnLogger(name, 'log', process.env.KILN_LOG_FORMAT === 'pretty' ? 'pretty' : 'json');
  process.on('unhandledRejection', (reason) => {
    logFailure(`[kiln ${name}] unhandled rejection: ${String((reason as Error)?.stack ?? reason)}`);
  });
  boot().catch((error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    logFailure(`[kiln ${name}] cannot start: ${message}`);
    process.exit(error instanceof Error && error.name === 'ConfigError' ? 2 : 1);
  });
}
