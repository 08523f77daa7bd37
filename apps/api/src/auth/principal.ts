/** Who a request acts as: the admin (from config), or the project a token belongs to. */
export type Principal = { admin: true } | { admin: false; projectId: string };
