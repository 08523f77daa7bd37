import { Column, Entity, PrimaryColumn } from 'typeorm';

/** An image a worker pulled itself: the only images its collector may remove. */
@Entity('pulled_images')
export class PulledImage {
  @PrimaryColumn({ name: 'worker_id', type: 'text' })
  workerId!: string;

  @PrimaryColumn({ type: 'text' })
  image!: string;

  @Column({ name: 'last_used_at', type: 'timestamptz' })
  lastUsedAt!: Date;
}
