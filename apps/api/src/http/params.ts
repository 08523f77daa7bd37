import { PipeTransform, Injectable } from '@nestjs/common';
import { KilnException, isId } from '@kiln/common';

/** Rejects a malformed resource id with a 400 before any query runs. */
@Injectable()
export class IdPipe implements PipeTransform<unknown, string> {
  transform(value: unknown): string {
    if (!isId(value))
      throw KilnException.badRequest(`"${String(value)}" is not a valid id (24 hex characters)`);
    return value;
  }
}

export interface Page {
  page: number;
  perPage: number;
}

/** IronWorker's paging: `page` from 0 (max 100), `per_page` 1-100, default 30. */
export function parsePage(query: Record<string, unknown>): Page {
  return {
    page: queryInt(query, 'page', 0, 0, 100),
    perPage: queryInt(query, 'per_page', 30, 1, 100),
  };
}

export function queryInt(
  query: Record<string, unknown>,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = query[name];
  if (raw === undefined || raw === '') return fallback;
  const value = typeof raw === 'string' && /^-?\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw KilnException.badRequest(`${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}
