import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';

/** Postgres's side of readiness: one round trip on the pool. */
@Injectable()
export class DatabaseHealth {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  async check(): Promise<void> {
    await this.db.query('SELECT 1');
  }
}
