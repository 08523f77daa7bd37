import { KilnException } from './errors';

/** The cluster every project may queue to; any other must be granted by the operator. */
export const DEFAULT_CLUSTER = 'default';

const CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** A cluster name as tasks, schedules, triggers and grants take it, or a 400 naming `label`. */
export function checkClusterName(name: string, label = 'cluster'): string {
  if (!CLUSTER_NAME.test(name)) {
    throw KilnException.badRequest(`${label} must be 1-63 letters, digits, '.', '_' or '-'`);
  }
  return name;
}
