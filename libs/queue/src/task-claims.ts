import type { Queue } from 'bull';
import type Redis from 'ioredis';
import { bullInternals, scriptCommand } from './bull-scripts';
import type { TaskJob } from './task-job';

/**
 * How workers take jobs off a cluster's queues: one Lua call per fetch instead of Bull's
 * `moveToActive` per priority queue plus `moveToCompleted` per job (four scripts of a dozen
 * arguments per task; docs/benchmarks.md, dispatch). Kiln uses a Bull job only to deliver a task
 * id: the task row in Postgres tracks the rest, so a job has no life after delivery.
 *
 * The script pops up to `max` job ids from the queues' `wait` lists, most urgent queue first
 * (FIFO within a queue, as Bull's `RPOPLPUSH`; a queue Bull paused is skipped), reads each job's
 * `data` and deletes the job's keys. Each delivered job is recorded as a claim in one sorted set
 * (`<prefix>:task-claims`, member `<task id>:<worker id>`, scored by Redis's clock in ms) until
 * the worker reports that its take is settled. So a worker that dies between the pop and its
 * compare-and-set in Postgres leaves a claim behind, and the reconciler re-queues that task once
 * the claim is stale ({@link staleTaskClaims}): a delivered job is never lost, at worst delivered
 * twice, and the second take finds the task no longer queued.
 *
 * KEYS: the claims set, then for each queue, most urgent first: `wait`, `meta-paused`. ARGV: the
 * most jobs to claim, the worker id, the number n of settled claims to drop, their n task ids,
 * then each queue's job key prefix (`<prefix>:<queue>:`). Returns (task id, job data) pairs.
 */
const CLAIM_TASK_JOBS_LUA = `
local rcall = redis.call
local claims = KEYS[1]
local max = tonumber(ARGV[1])
local worker = ARGV[2]
local settled = tonumber(ARGV[3])
for i = 4, 3 + settled do rcall("ZREM", claims, ARGV[i] .. ":" .. worker) end
local time = rcall("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local out = {}
local claimed = 0
local queue = 0
for k = 2, #KEYS, 2 do
  queue = queue + 1
  if claimed >= max then break end
  if rcall("EXISTS", KEYS[k + 1]) == 0 then
    local jobPrefix = ARGV[3 + settled + queue]
    while claimed < max do
      local id = rcall("RPOP", KEYS[k])
      if not id then break end
      local jobKey = jobPrefix .. id
      local data = rcall("HGET", jobKey, "data")
      rcall("DEL", jobKey, jobKey .. ":logs")
      if data then
        rcall("ZADD", claims, now, id .. ":" .. worker)
        out[#out + 1] = id
        out[#out + 1] = data
        claimed = claimed + 1
      end
    end
  end
end
return out
`;

const COMMAND = 'kilnClaimTaskJobs';

/** A delivered job: the task id and the job's data, still unparsed. */
export interface ClaimedJob {
  taskId: string;
  data: string;
}

/** The sorted set of claims, under the queues' key prefix. */
export function taskClaimsKey(prefix: string): string {
  return `${prefix}:task-claims`;
}

/**
 * Claims up to `max` jobs from `queues` (most urgent first, all on one Redis connection) for
 * `workerId`, and first drops the claims of `settled` task ids of that worker.
 */
export async function claimTaskJobs(
  queues: Queue<TaskJob>[],
  claimsKey: string,
  workerId: string,
  max: number,
  settled: string[],
): Promise<ClaimedJob[]> {
  await queues[0].isReady();
  const internals = queues.map(bullInternals);
  const claim = scriptCommand<string[]>(internals[0].client, COMMAND, CLAIM_TASK_JOBS_LUA);
  const keys = [
    claimsKey,
    ...internals.flatMap((queue) => [queue.keys.wait, queue.keys['meta-paused']]),
  ];
  const reply = await claim(
    keys.length,
    ...keys,
    max,
    workerId,
    settled.length,
    ...settled,
    ...internals.map((queue) => queue.keys['']),
  );
  const jobs: ClaimedJob[] = [];
  for (let i = 0; i < reply.length; i += 2) jobs.push({ taskId: reply[i], data: reply[i + 1] });
  return jobs;
}

/** A claim older than `olderThanMs` by Redis's clock: its task id and set member. */
export interface StaleClaim {
  taskId: string;
  member: string;
}

/** Every claim `workerId` holds: a restarted worker's jobs delivered to its earlier life. */
export async function workerTaskClaims(
  client: Redis,
  claimsKey: string,
  workerId: string,
): Promise<StaleClaim[]> {
  const suffix = `:${workerId}`;
  const members = await client.zrange(claimsKey, 0, -1);
  return members
    .filter((member) => member.endsWith(suffix))
    .map((member) => ({ taskId: member.slice(0, member.length - suffix.length), member }));
}

/** Up to `limit` claims older than `olderThanMs`, oldest first. */
export async function staleTaskClaims(
  client: Redis,
  claimsKey: string,
  olderThanMs: number,
  limit: number,
): Promise<StaleClaim[]> {
  const [seconds, micros] = await client.time();
  const cutoff = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) - olderThanMs;
  const members = await client.zrangebyscore(claimsKey, '-inf', cutoff, 'LIMIT', 0, limit);
  return members.map((member) => ({ taskId: member.slice(0, member.indexOf(':')), member }));
}
