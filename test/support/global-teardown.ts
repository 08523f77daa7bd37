import type { ChildProcess } from 'node:child_process';
import { stopApp } from './processes';

export default async function globalTeardown(): Promise<void> {
  const children = (globalThis as { __kilnChildren?: ChildProcess[] }).__kilnChildren ?? [];
  await Promise.all(children.map((child) => stopApp(child)));
}
