import type { Request } from 'express';
import { clientAddress } from './client-address';

const from = (ip: string) => clientAddress({ ip, socket: {} } as unknown as Request);

describe('clientAddress', () => {
  it('counts IPv4 as it is, an IPv4-mapped IPv6 address as its IPv4 address', () => {
    expect(from('127.0.0.2')).toBe('127.0.0.2');
    expect(from('::ffff:127.0.0.2')).toBe('127.0.0.2');
  });

  it('counts IPv6 by its /64: a host holds a whole one', () => {
    expect(from('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2:0:0:0:0/64');
    expect(from('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe(from('2001:db8:1:2::9'));
    expect(from('2001:db8:1:3::9')).not.toBe(from('2001:db8:1:2::9'));
  });
});
