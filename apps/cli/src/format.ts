import type { FinalTaskStatus } from '@kiln/client';

/** Colour only on a terminal, and never with `NO_COLOR` set. */
export function colours(tty: boolean, noColor: boolean) {
  const on = tty && !noColor;
  const paint =
    (code: number) =>
    (text: string): string =>
      on ? `\u001b[${code}m${text}\u001b[0m` : text;
  return { red: paint(31), green: paint(32), yellow: paint(33), dim: paint(2), bold: paint(1) };
}

export type Colours = ReturnType<typeof colours>;

export function paintStatus(status: string, c: Colours): string {
  switch (status) {
    case 'complete':
      return c.green(status);
    case 'error':
    case 'timeout':
    case 'killed':
      return c.red(status);
    case 'running':
    case 'preparing':
      return c.yellow(status);
    default:
      return status;
  }
}

/** The exit code a finished task gives `kiln queue --wait` and `kiln log -f`. */
export const EXIT_CODES: Record<FinalTaskStatus, number> = {
  complete: 0,
  error: 1,
  cancelled: 130,
  timeout: 124,
  killed: 137,
};

/** Left-aligned columns; `paint` may colour a cell after it is padded. */
export function table(
  header: string[],
  rows: string[][],
  paint: (column: number, cell: string, padded: string) => string = (_c, _cell, padded) => padded,
): string {
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)),
  );
  const line = (cells: string[], painted: boolean) =>
    cells
      .map((cell, i) => {
        const padded = i === cells.length - 1 ? cell : cell.padEnd(widths[i]);
        return painted ? paint(i, cell, padded) : padded;
      })
      .join('  ')
      .trimEnd();
  return [line(header, false), ...rows.map((row) => line(row, true))].join('\n') + '\n';
}

/** `2025-01-02T03:04:05.000Z` → `2025-01-02 03:04:05`; the zero time → `-`. */
export function shortTime(value: string | undefined): string {
  if (!value || value.startsWith('0001-')) return '-';
  return value.replace('T', ' ').replace(/\.\d+Z$|Z$/, '');
}

export function duration(ms: number): string {
  if (!ms) return '-';
  return ms < 1000
    ? `${ms}ms`
    : ms < 60_000
      ? `${(ms / 1000).toFixed(1)}s`
      : `${Math.round(ms / 1000)}s`;
}

export function bytes(n: number): string {
  return n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A one-line progress bar, redrawn in place on a terminal. */
export function progressBar(sent: number, total: number, width = 30): string {
  const share = total > 0 ? Math.min(1, sent / total) : 1;
  const filled = Math.round(share * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(share * 100)).padStart(3)}%  ${bytes(sent)} / ${bytes(total)}`;
}
