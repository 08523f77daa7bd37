import { formatTime } from '@kiln/common';
import type { Code, CodeRevision, HotSetting } from '@kiln/codes';

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
    // While paused, IronWorker shows max_concurrency -1; absent means unlimited.
    ...(code.paused
      ? { max_concurrency: -1 }
      : code.maxConcurrency !== null
        ? { max_concurrency: code.maxConcurrency }
        : {}),
    retries: code.retries,
    retries_delay: code.retriesDelay,
    priority: code.defaultPriority,
    default_priority: code.defaultPriority,
    // Kiln's: null means the server's default (KILN_CONTAINER_CPUS, KILN_CONTAINER_MEMORY_MB).
    cpus: code.cpus,
    memory: code.memoryMb,
    hot: hotJson(code.hot),
    // IronWorker's: the checksum of the latest zip package ("" for an image-only revision).
    latest_checksum: code.zipDigest?.slice('sha256:'.length) ?? '',
    zip_digest: code.zipDigest,
  };
}

export function revisionJson(code: Code, revision: CodeRevision) {
  return {
    id: revision.id,
    code_id: code.id,
    project_id: code.projectId,
    name: code.name,
    rev: revision.rev,
    created_at: formatTime(revision.createdAt),
    updated_at: formatTime(revision.createdAt),
    image: revision.image,
    command: revision.command,
    config: revision.config,
    env_vars: revision.envVars,
    cpus: revision.cpus,
    memory: revision.memoryMb,
    hot: hotJson(revision.hot),
    zip_digest: revision.zipDigest,
  };
}

/** Hot mode as it is given (docs/hot.md); null: cold. */
function hotJson(hot: HotSetting | null) {
  return (
    hot && {
      idle_timeout: hot.idleTimeout,
      max_tasks: hot.maxTasks,
      max_containers: hot.maxContainers,
    }
  );
}
