import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { KILN_CONFIG, KilnConfig } from '@kiln/config';
import { SignalChannel } from './signal-channel';

/**
 * Tells workers at once that tasks were cancelled, over Redis pub/sub. A lost message costs only
 * time: workers also learn it from their next heartbeat (`TaskLifecycle.heartbeat`).
 */
@Injectable()
export class TaskSignals implements OnApplicationShutdown {
  private readonly channel: SignalChannel;

  constructor(@Inject(KILN_CONFIG) config: KilnConfig) {
    this.channel = new SignalChannel(config, 'cancel', TaskSignals.name, 'cancel signal');
  }

  async cancelled(taskIds: string[]): Promise<void> {
    await this.channel.publish(taskIds);
  }

  async onCancel(handler: (taskId: string) => void): Promise<void> {
    await this.channel.subscribe(handler);
  }

  onApplicationShutdown(): void {
    this.channel.close();
  }
}
