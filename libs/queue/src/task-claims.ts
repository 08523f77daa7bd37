import type Redis from 'ioredis';
import { scriptCommand } from './bull-scripts';
import { DISPATCH_ORDER, clusterKeys, queueKeys, sharedQueueName } from './task-job';

/**
 * How workers take jobs off a cluster's queues: one Lua call per fetch instead of Bull's
 * `moveToActive` per queue plus `moveToCompleted` per job (four scripts of a dozen arguments per
 * task; docs/benchmarks.md, dispatch). Kiln uses a Bull job only to deliver a task id: the task
 * row in Postgres tracks the rest, so a job has no life after delivery.
 *
 * **Fair across projects** (docs/decisions/0006-fair-queues.md): each project has its own queues
 * per (cluster, priority), and the cluster's `ring` lists the projects with jobs waiting. The
 * script takes the project at the head of the ring, pops one job from its most urgent queue that
 * has one (FIFO within a queue, as Bull's `RPOPLPUSH`; a queue Bull paused is skipped), and puts
 * the project back at the tail while it has more, or out of the ring when it has none. So each
 * project with work waiting gets one job in turn, whatever the others' backlogs; priority orders
 * a project's own jobs. Jobs of the queues shared by every project before queues were per project
 * (`sharedQueueName`) are taken first, so an upgrade strands none.
 *
 * Each delivered job's keys are deleted and the delivery is recorded as a claim in one sorted set
 * (`<prefix>:task-claims`, member `<task id>:<worker id>`, scored by Redis's clock in ms) until
 * the worker reports that its take is settled. So a worker that dies between the pop and its
 * compare-and-set in Postgres leaves a claim behind, and the reconciler re-queues that task once
 * the claim is stale ({@link staleTaskClaims}): a delivered job is never lost, at worst delivered
 * twice, and the second take finds the task no longer queued.
 *
 * The per-project queue keys are built in the script (`<queues><project id>.p<priority>:…`) rather
 * than passed as KEYS: fine on one Redis (or Sentinel), not for Redis Cluster, which Bull does
 * not support either.
 *
 * KEYS: the claims set, the ring, the ring members, then for each shared queue, most urgent first:
 * `wait`, `meta-paused`. ARGV: the most jobs to claim, the worker id, the number n of settled
 * claims to drop, their n task ids, each shared queue's job key prefix (`<prefix>:<queue>:`), then
 * the prefix of the cluster's per-project queue keys. Returns (task id, job data) pairs.
 */
const CLAIM_TASK_JOBS_LUA = `
local rcall = redis.call
local claims = KEYS[1]
local ring = KEYS[2]
local members = KEYS[3]
local max = tonumber(ARGV[1])
local worker = ARGV[2]
local settled = tonumber(ARGV[3])
for i = 4, 3 + settled do rcall("ZREM", claims, ARGV[i] .. ":" .. worker) end
local shared = (#KEYS - 3) / 2
local queues = ARGV[4 + settled + shared]
local time = rcall("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local out = {}
local claimed = 0

-- Pops the oldest job of a wait list whose hash still exists: its id and data, or nil.
local function pop(wait, jobPrefix)
  while true do
    local id = rcall("RPOP", wait)
    if not id then return nil end
    local jobKey = jobPrefix .. id
    local data = rcall("HGET", jobKey, "data")
    rcall("DEL", jobKey, jobKey .. ":logs")
    if data then return id, data end
  end
end

local function deliver(id, data)
  rcall("ZADD", claims, now, id .. ":" .. worker)
  out[#out + 1] = id
  out[#out + 1] = data
  claimed = claimed + 1
end

for q = 1, shared do
  local wait = KEYS[2 + 2 * q]
  if rcall("EXISTS", KEYS[3 + 2 * q]) == 0 then
    while claimed < max do
      local id, data = pop(wait, ARGV[3 + settled + q])
      if not id then break end
      deliver(id, data)
    end
  end
end

-- Each turn either delivers a job or takes a project out of the ring, so this ends.
while claimed < max do
  local project = rcall("LPOP", ring)
  if not project then break end
  local got = false
  local more = false
  for _, priority in ipairs({2, 1, 0}) do
    local queue = queues .. project .. ".p" .. priority .. ":"
    if rcall("EXISTS", queue .. "meta-paused") == 0 then
      if not got then
        local id, data = pop(queue .. "wait", queue)
        if id then
          deliver(id, data)
          got = true
        end
      end
      if not more and rcall("LLEN", queue .. "wait") > 0 then more = true end
    end
  end
  if more then rcall("RPUSH", ring, project) else rcall("SREM", members, project) end
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
 * Claims up to `max` jobs of `cluster` for `workerId`, fairly across projects (see above), and
 * first drops the claims of `settled` task ids of that worker. `prefix` is Bull's key prefix.
 */
export async function claimTaskJobs(
  client: Redis,
  prefix: string,
  cluster: string,
  workerId: string,
  max: number,
  settled: string[],
): Promise<ClaimedJob[]> {
  const claim = scriptCommand<string[]>(client, COMMAND, CLAIM_TASK_JOBS_LUA);
  const keys = clusterKeys(prefix, cluster);
  const shared = DISPATCH_ORDER.map((priority) =>
    queueKeys(prefix, sharedQueueName(cluster, priority)),
  );
  const reply = await claim(
    3 + 2 * shared.length,
    taskClaimsKey(prefix),
    keys.ring,
    keys.members,
    ...shared.flatMap((queue) => [queue.wait, queue.metaPaused]),
    max,
    workerId,
    settled.length,
    ...settled,
    ...shared.map((queue) => queue.jobs),
    keys.queues,
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
