import { LookupAddress, lookup as dnsLookup } from 'node:dns';
import { LookupFunction } from 'node:net';

/** Thrown (through the lookup callback) when a destination must not be reached. */
export class RefusedDestination extends Error {
  override name = 'RefusedDestination';
}

export type Resolver = typeof dnsLookup;

/** Why `hostname` must not be reached at `address`, or null when it may be. */
export type AddressCheck = (hostname: string, address: string) => string | null;

/**
 * A `lookup` for `net.connect` that resolves, then keeps only the addresses `check` lets through:
 * the check is on the address the socket is about to connect to, so DNS rebinding between a
 * registration and the connection gains nothing. Node does not call `lookup` for an address
 * literal: callers check those themselves before connecting.
 */
export function guardedLookup(check: AddressCheck, resolve: Resolver = dnsLookup): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
      if (error) return callback(error, '', 0);
      const reasons: string[] = [];
      const usable = addresses.filter((entry) => {
        const why = check(hostname, entry.address);
        if (why) reasons.push(why);
        return why === null;
      });
      if (usable.length === 0) {
        return callback(new RefusedDestination(reasons[0] ?? `${hostname}: no address`), '', 0);
      }
      if (options.all) return (callback as unknown as AllCallback)(null, usable);
      callback(null, usable[0].address, usable[0].family);
    });
  };
}

type AllCallback = (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void;
