/**
 * What a project token may do, each role holding the one before it:
 * - `read`: every read of the project (logs included);
 * - `queue`: read, and create, cancel and retry tasks and set their progress;
 * - `manage`: everything in the project (codes, schedules, webhooks, credentials, tokens).
 * The admin token is above roles. Which role each route needs is declared on the route
 * (apps/api/src/auth/roles.ts).
 */
export const TOKEN_ROLES = ['read', 'queue', 'manage'] as const;

export type TokenRole = (typeof TOKEN_ROLES)[number];

export function isTokenRole(value: unknown): value is TokenRole {
  return (TOKEN_ROLES as readonly unknown[]).includes(value);
}

/** Whether a token of role `held` may do what needs `needed`. */
export function roleAllows(held: TokenRole, needed: TokenRole): boolean {
  return TOKEN_ROLES.indexOf(held) >= TOKEN_ROLES.indexOf(needed);
}
