import { Initial1763884800000 } from './1763884800000-Initial';
import { TaskListIndexes1763892000000 } from './1763892000000-TaskListIndexes';
import { Schedules1763899200000 } from './1763899200000-Schedules';
import { Images1763910000000 } from './1763910000000-Images';
import { Webhooks1763913600000 } from './1763913600000-Webhooks';
import { TokenRoles1764000000000 } from './1764000000000-TokenRoles';
import { ClusterGrants1764007200000 } from './1764007200000-ClusterGrants';
import { ProjectMaxRunning1764010800000 } from './1764010800000-ProjectMaxRunning';
import { WebhookCircuits1764100000000 } from './1764100000000-WebhookCircuits';
import { ContainerLimits1764200000000 } from './1764200000000-ContainerLimits';
import { TaskRetention1764300000000 } from './1764300000000-TaskRetention';
import { TaskTraceparent1764400000000 } from './1764400000000-TaskTraceparent';
import { LogDrains1764500000000 } from './1764500000000-LogDrains';
import { TaskListFilters1764600000000 } from './1764600000000-TaskListFilters';
import { HotCodes1764900000000 } from './1764900000000-HotCodes';
import { LogDrainSweep1765000100000 } from './1765000100000-LogDrainSweep';
import { ZipPackages1765000200000 } from './1765000200000-ZipPackages';

/** Every migration, oldest first. A new migration is added here as well as in this folder. */
export const migrations = [
  Initial1763884800000,
  TaskListIndexes1763892000000,
  Schedules1763899200000,
  Images1763910000000,
  Webhooks1763913600000,
  TokenRoles1764000000000,
  ClusterGrants1764007200000,
  ProjectMaxRunning1764010800000,
  WebhookCircuits1764100000000,
  ContainerLimits1764200000000,
  TaskRetention1764300000000,
  TaskTraceparent1764400000000,
  LogDrains1764500000000,
  TaskListFilters1764600000000,
  HotCodes1764900000000,
  LogDrainSweep1765000100000,
  ZipPackages1765000200000,
];
