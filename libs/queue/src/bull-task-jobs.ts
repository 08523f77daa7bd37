import type Redis from 'ioredis';
import { isId } from '@kiln/common';
import { scriptCommand } from './bull-scripts';
import { TaskPriority, clusterKeys, queueKeys, taskQueueName } from './task-job';

/**
 * Adds many task jobs of one project to its Bull queue of a (cluster, priority) in a single Lua
 * call, instead of Bull's `addBulk`, which sends one `EVALSHA addJob` with 14 arguments per job:
 * on the API's hot path that encoding cost about 40 % of its CPU.
 *
 * It writes what Bull 4.16's `addJob-6.lua` writes for a plain job (no delay, no priority, FIFO,
 * custom job id): the job hash (`name`, `data`, `opts`, `timestamp`, `delay`, `priority`, with
 * `data` and `opts` as Bull's `JSON.stringify` would write them) and an `LPUSH` of the id on the
 * `wait` list (or `paused` when `meta-paused` exists). An id whose hash already exists is skipped,
 * as Bull skips a duplicate job id. Unlike Bull it leaves the `id` counter alone (Kiln's job id is
 * always the task id; the counter only orders delayed jobs), and instead of Bull's `waiting`
 * event per job it puts the project in the cluster's ring (see task-claims.ts) and publishes once
 * on the cluster's `waiting` channel, which its workers listen to.
 *
 * This ties Kiln to Bull's key layout: `bull` is pinned to an exact version in package.json and
 * test/integration/bull-task-jobs.int-spec.ts compares these jobs with Bull's own, field by
 * field, and has Bull's API and worker read them.
 *
 * KEYS: wait, paused, meta-paused, the cluster's ring and ring members. ARGV: job key prefix
 * (`<prefix>:<queue>:`), the cluster's `waiting` channel, the timestamp in ms, the project id,
 * then the task ids (all of that project). Returns how many jobs were added.
 */
const ADD_TASK_JOBS_LUA = `
local rcall = redis.call
local target = KEYS[1]
if rcall("EXISTS", KEYS[3]) == 1 then target = KEYS[2] end
local timestamp = ARGV[3]
local projectId = ARGV[4]
local added = 0
for i = 5, #ARGV do
  local jobId = ARGV[i]
  local jobKey = ARGV[1] .. jobId
  if rcall("EXISTS", jobKey) == 0 then
    rcall("HMSET", jobKey,
      "name", "__default__",
      "data", '{"taskId":"' .. jobId .. '","projectId":"' .. projectId .. '"}',
      "opts", '{"jobId":"' .. jobId .. '","removeOnComplete":true,"removeOnFail":true,"attempts":1,"delay":0,"timestamp":' .. timestamp .. '}',
      "timestamp", timestamp,
      "delay", "0",
      "priority", "0")
    rcall("LPUSH", target, jobId)
    added = added + 1
  end
end
if added > 0 then
  if rcall("SADD", KEYS[5], projectId) == 1 then rcall("RPUSH", KEYS[4], projectId) end
  rcall("PUBLISH", ARGV[2], added)
end
return added
`;

const COMMAND = 'kilnAddTaskJobs';

/** Where a batch of jobs goes: one project's queue of a (cluster, priority). */
export interface JobTarget {
  cluster: string;
  projectId: string;
  priority: TaskPriority;
}

/**
 * Adds jobs for the tasks `taskIds` of `target.projectId` to its queue, with `jobId` = task id and
 * `removeOnComplete`/`removeOnFail`; returns how many were new. `prefix` is Bull's key prefix.
 */
export async function addTaskJobs(
  client: Redis,
  prefix: string,
  target: JobTarget,
  taskIds: string[],
): Promise<number> {
  if (taskIds.length === 0) return 0;
  // The script writes the ids into JSON unescaped: only ids may go there.
  const notId = [target.projectId, ...taskIds].find((id) => !isId(id));
  if (notId !== undefined) throw new Error(`not a task or project id: ${JSON.stringify(notId)}`);
  const queue = queueKeys(prefix, taskQueueName(target.cluster, target.projectId, target.priority));
  const cluster = clusterKeys(prefix, target.cluster);
  const addJobs = scriptCommand<number>(client, COMMAND, ADD_TASK_JOBS_LUA, 5);
  return addJobs(
    queue.wait,
    queue.paused,
    queue.metaPaused,
    cluster.ring,
    cluster.members,
    queue.jobs,
    cluster.waiting,
    String(Date.now()),
    target.projectId,
    ...taskIds,
  );
}
