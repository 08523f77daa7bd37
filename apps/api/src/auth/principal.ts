import type { TokenRole } from '@kiln/projects';

/** Who a request acts as: the admin (from config), or a token of one project with its role. */
export type Principal =
  | { admin: true }
  | {
      admin: false;
      projectId: string;
      tokenId: string;
      role: TokenRole;
      /** When the token stops working; null: never. */
      expiresAt: Date | null;
    };
