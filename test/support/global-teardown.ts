import type { ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { e2e } from './kiln';
import { stopApp } from './processes';

export default async function globalTeardown(): Promise<void> {
  const children = (globalThis as { __kilnChildren?: ChildProcess[] }).__kilnChildren ?? [];
  await Promise.all(children.map((child) => stopApp(child)));
  await rm(e2e().env.KILN_TASK_FILES_DIR, { recursive: true, force: true });
}
