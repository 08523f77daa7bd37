import { TOKEN_ROLES, TokenRole } from '@kiln/client';

/**
 * The roles (`TOKEN_ROLES` of `@kiln/client`: `read` < `queue` < `manage`), as the server checks
 * them. The admin token is above roles. Which role each route needs is declared on the route
 * (apps/api/src/auth/roles.ts).
 */
export { TOKEN_ROLES };
export type { TokenRole };

export function isTokenRole(value: unknown): value is TokenRole {
  return (TOKEN_ROLES as readonly unknown[]).includes(value);
}

/** Whether a token of role `held` may do what needs `needed`. */
export function roleAllows(held: TokenRole, needed: TokenRole): boolean {
  return TOKEN_ROLES.indexOf(held) >= TOKEN_ROLES.indexOf(needed);
}
