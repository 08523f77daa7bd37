import { Transport } from './http';
import { compact } from './paging';
import { Message, NewRegistryCredential, RegistryCredential } from './types';

/**
 * The project's logins to private registries (what `iron docker login` stores): workers pull the
 * project's images with them. One per registry; the password is never shown again:
 * `kiln.credentials`. The server needs KILN_CREDENTIALS_KEY (else 503).
 */
export class Credentials {
  constructor(
    private readonly http: Transport,
    private readonly base: string,
  ) {}

  /**
   * Stores a login, replacing the project's earlier one for the same registry.
   * @example await kiln.credentials.add({ serverAddress: 'registry.example.com:5000', username: 'ci', password });
   */
  async add(credential: NewRegistryCredential): Promise<Message> {
    return this.http.json<Message>({
      method: 'POST',
      path: `${this.base}/credentials`,
      json: compact({
        serveraddress: credential.serverAddress,
        username: credential.username,
        password: credential.password,
        email: credential.email,
      }),
      // The same login twice stores the same thing.
      idempotent: true,
    });
  }

  /** The stored logins, without passwords. */
  async list(): Promise<RegistryCredential[]> {
    const { credentials } = await this.http.json<{ credentials: RegistryCredential[] }>({
      method: 'GET',
      path: `${this.base}/credentials`,
      idempotent: true,
    });
    return credentials;
  }

  /** Forgets the login for `serverAddress` (a host, or a URL reduced to its host); 404 when none. */
  async remove(serverAddress: string): Promise<Message> {
    return this.http.json<Message>({
      method: 'DELETE',
      path: `${this.base}/credentials`,
      query: { serveraddress: serverAddress },
      idempotent: true,
    });
  }
}
