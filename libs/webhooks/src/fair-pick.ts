/** A due delivery the claim may take, as the outbox offers it (each endpoint's in due order). */
export interface Candidate {
  id: string;
  projectId: string;
  endpointKey: string;
}

export interface FairLimits {
  /** Deliveries to take at most (the dispatcher's free slots). */
  free: number;
  /** Attempts in flight for one project at most (`KILN_WEBHOOK_PROJECT_CONCURRENCY`). */
  perProject: number;
  /** Attempts in flight to one endpoint at most (`KILN_WEBHOOK_ENDPOINT_CONCURRENCY`). */
  perEndpoint: number;
}

/** Attempts this process has in flight, by project and by endpoint. */
export interface InFlight {
  projects: ReadonlyMap<string, number>;
  endpoints: ReadonlyMap<string, number>;
}

/**
 * Which candidates to take: one at a time, to the project with the fewest attempts in flight
 * (counting those just taken), and within it to the endpoint with the fewest, each under its cap.
 * So a project with a deep backlog, or one endpoint of it, gets its share of free slots and no
 * more while others have work; when only it has work it may use up to its cap.
 */
export function pickFair<C extends Candidate>(
  candidates: readonly C[],
  inFlight: InFlight,
  limits: FairLimits,
): C[] {
  const projects = new Map<string, Map<string, C[]>>();
  for (const candidate of candidates) {
    const endpoints = projects.get(candidate.projectId) ?? new Map<string, C[]>();
    projects.set(candidate.projectId, endpoints);
    const queue = endpoints.get(candidate.endpointKey) ?? [];
    endpoints.set(candidate.endpointKey, queue);
    queue.push(candidate);
  }
  const projectLoad = new Map(inFlight.projects);
  const endpointLoad = new Map(inFlight.endpoints);
  const load = (map: Map<string, number>, key: string) => map.get(key) ?? 0;
  const fewest = <T>(keys: Iterable<T>, weight: (key: T) => number): T | undefined => {
    let best: T | undefined;
    for (const key of keys) if (best === undefined || weight(key) < weight(best)) best = key;
    return best;
  };
  const picked: C[] = [];
  while (picked.length < limits.free && projects.size > 0) {
    const projectId = fewest(projects.keys(), (id) => load(projectLoad, id))!;
    const endpoints = projects.get(projectId)!;
    const endpointKey = fewest(endpoints.keys(), (key) => load(endpointLoad, key))!;
    const queue = endpoints.get(endpointKey)!;
    const full = load(endpointLoad, endpointKey) >= limits.perEndpoint;
    if (load(projectLoad, projectId) >= limits.perProject) {
      projects.delete(projectId);
      continue;
    }
    if (full) {
      endpoints.delete(endpointKey);
      if (endpoints.size === 0) projects.delete(projectId);
      continue;
    }
    picked.push(queue.shift()!);
    projectLoad.set(projectId, load(projectLoad, projectId) + 1);
    endpointLoad.set(endpointKey, load(endpointLoad, endpointKey) + 1);
    if (queue.length === 0) endpoints.delete(endpointKey);
    if (endpoints.size === 0) projects.delete(projectId);
  }
  return picked;
}
