import {
  embeddedIpv4,
  formatIp,
  isAllowListed,
  parseAllowList,
  parseCidr,
  parseIp,
  refusedAddressReason,
} from './ip';

const ip = (text: string) => {
  const parsed = parseIp(text);
  if (!parsed) throw new Error(`not an address: ${text}`);
  return parsed;
};

describe('parseIp', () => {
  it.each(['1.2.3.4', '::1', '2001:db8::1', '::ffff:127.0.0.1', 'fe80::1%eth0', '[::1]'])(
    'reads %s',
    (text) => expect(parseIp(text)).not.toBeNull(),
  );

  it.each(['', 'localhost', '1.2.3', '::g', '999.1.1.1'])('rejects %p', (text) =>
    expect(parseIp(text)).toBeNull(),
  );

  it('expands :: and dotted quads', () => {
    expect(formatIp(ip('2001:db8::1'))).toBe('2001:db8:0:0:0:0:0:1');
    expect(formatIp(ip('::ffff:10.1.2.3'))).toBe('0:0:0:0:0:ffff:a01:203');
    expect(formatIp(ip('10.1.2.3'))).toBe('10.1.2.3');
  });
});

describe('refusedAddressReason', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.1.1', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.5.4', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'metadata'],
    ['100.64.0.1', 'carrier-grade NAT'],
    ['100.100.100.200', 'carrier-grade NAT'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fe80::1', 'link-local'],
    ['fd00:ec2::254', 'unique-local'],
    ['fc00::1', 'unique-local'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:a9fe:a9fe', 'metadata'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['2002:7f00:1::', 'loopback'],
  ])('refuses %s (%s)', (text, why) => {
    expect(refusedAddressReason(ip(text))).toContain(why);
  });

  it.each(['1.1.1.1', '8.8.8.8', '172.32.0.1', '100.128.0.1', '2606:4700::1111', '::ffff:8.8.8.8'])(
    'lets %s through',
    (text) => expect(refusedAddressReason(ip(text))).toBeNull(),
  );

  it('finds the IPv4 address inside mapped IPv6 addresses', () => {
    expect(formatIp(embeddedIpv4(ip('::ffff:1.2.3.4'))!)).toBe('1.2.3.4');
    expect(embeddedIpv4(ip('2606:4700::1111'))).toBeNull();
  });
});

describe('parseCidr', () => {
  it('normalises the base and refuses nonsense', () => {
    expect(parseCidr('10.1.2.3/8')).toEqual({ family: 4, base: ip('10.0.0.0').value, bits: 8 });
    expect(parseCidr('10.0.0.0/33')).toBeNull();
    expect(parseCidr('fc00::/7')).toMatchObject({ family: 6, bits: 7 });
    expect(parseCidr('nope/8')).toBeNull();
  });
});

describe('allow-list', () => {
  it('reads hosts, addresses, CIDRs and ports; reports what it cannot read', () => {
    const { entries, bad } = parseAllowList(
      'hooks.internal, 127.0.0.1:9000 ,10.0.0.0/8,[::1]:80,::1,bad host,1.2.3.4:99999,',
    );
    expect(entries).toHaveLength(5);
    expect(bad).toEqual(['bad host', '1.2.3.4:99999']);
  });

  const { entries } = parseAllowList('hooks.internal,127.0.0.1:9000,10.0.0.0/8,[::1]:80');

  it('matches a host entry by the URL host name, whatever it resolves to', () => {
    expect(isAllowListed(entries, 'HOOKS.internal', 443, ip('10.9.9.9'))).toBe(true);
    expect(isAllowListed(entries, 'hooks.internal', 443, ip('192.168.0.1'))).toBe(true);
    expect(isAllowListed(entries, 'other.internal', 443, ip('192.168.0.1'))).toBe(false);
  });

  it('matches address entries on the resolved address and port', () => {
    expect(isAllowListed(entries, 'localhost', 9000, ip('127.0.0.1'))).toBe(true);
    expect(isAllowListed(entries, '127.0.0.1', 9001, ip('127.0.0.1'))).toBe(false);
    expect(isAllowListed(entries, 'x', 1, ip('10.200.0.1'))).toBe(true);
    expect(isAllowListed(entries, 'x', 1, ip('::ffff:10.200.0.1'))).toBe(true);
    expect(isAllowListed(entries, 'x', 80, ip('::1'))).toBe(true);
    expect(isAllowListed(entries, 'x', 81, ip('::1'))).toBe(false);
    expect(isAllowListed(entries, 'x', 80, ip('169.254.169.254'))).toBe(false);
  });
});
