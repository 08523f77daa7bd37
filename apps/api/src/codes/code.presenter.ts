import { formatTime } from '@kiln/common';
import type { Code } from '@kiln/codes';

/** A code in IronWorker's shape: `rev` a number, settings under their IronWorker names. */
export function codeJson(code: Code) {
  return {
    id: code.id,
    project_id: code.projectId,
    name: code.name,
    created_at: formatTime(code.createdAt),
    updated_at: formatTime(code.updatedAt),
    rev: code.rev,
    latest_history_id: code.latestRevisionId,
    latest_change: formatTime(code.updatedAt),
    image: code.image,
    command: code.command,
    config: code.config,
    env_vars: code.envVars,
    // While paused, IronWorker shows max_concurrency -1.
    max_concurrency: code.paused ? -1 : (code.maxConcurrency ?? 0),
    retries: code.retries,
    retries_delay: code.retriesDelay,
    priority: code.defaultPriority,
    default_priority: code.defaultPriority,
  };
}
