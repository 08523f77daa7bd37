import { Inject, Injectable } from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { FinalStatus, TaskLogStore, TaskSpec, TasksService, isFinal } from '@kiln/tasks';
import { TaskEnds } from './task-ends';

/** What an invoke answers once its task has ended. */
export interface InvokeResult {
  id: string;
  status: FinalStatus;
  msg: string;
  /** Run time in ms, as `GET tasks/{id}` gives it. */
  duration: number;
  /** The task's log (STDOUT and STDERR as printed), its first `KILN_INVOKE_OUTPUT_MAX_BYTES`. */
  output: string;
  /** Whether the log was longer than `output`. */
  truncated: boolean;
}

/**
 * Synchronous invoke (`POST …/codes/{name}/invoke`): one task queued exactly as `POST tasks`
 * queues it (`TasksService.create`: code lookup, cluster grant, `queued_tasks` quota, fair-share
 * queues, metrics with source `api`, webhooks), then waited for ({@link TaskEnds}) and answered
 * with its outcome and output.
 */
@Injectable()
export class Invoker {
  constructor(
    @Inject(KILN_CONFIG) private readonly config: KilnConfig,
    private readonly tasks: TasksService,
    private readonly logs: TaskLogStore,
    private readonly ends: TaskEnds,
  ) {}

  /**
   * Queues `spec` and waits until the task ends or `signal` aborts: the result, or just the
   * task's id when the wait ended first (the task goes on; the caller may poll it).
   */
  async invoke(
    projectId: string,
    spec: TaskSpec,
    signal: AbortSignal,
  ): Promise<{ id: string; result?: InvokeResult }> {
    const [id] = await this.tasks.create(projectId, [spec], 'api');
    const task = await this.ends.untilEnded(projectId, id, signal);
    if (!task || !isFinal(task.status)) return { id };
    const { text, truncated } = await this.logs.readHead(id, this.config.api.invokeOutputMaxBytes);
    return {
      id,
      result: {
        id,
        status: task.status,
        msg: task.msg,
        duration: task.durationMs ?? 0,
        output: text,
        truncated,
      },
    };
  }
}
