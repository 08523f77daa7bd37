import { parseAllowList } from '@kiln/common';
import { drainTarget, parseDrainUrl, parseLogDrainSpec } from './log-drain-spec';

describe('log drain URLs', () => {
  const none = parseAllowList('').entries;
  const loopback = parseAllowList('127.0.0.1').entries;

  it('takes https and syslog over TCP or TLS with a port', () => {
    expect(parseDrainUrl('https://logs.example.com/in?k=1', none)).toBe(
      'https://logs.example.com/in?k=1',
    );
    expect(parseDrainUrl('syslog+tcp://logs.example.com:514', none)).toBe(
      'syslog+tcp://logs.example.com:514',
    );
    expect(parseDrainUrl('syslog+tls://logs.example.com:6514/', none)).toBe(
      'syslog+tls://logs.example.com:6514',
    );
    expect(drainTarget('syslog+tls://logs.example.com:6514')).toMatchObject({
      kind: 'syslog+tls',
      host: 'logs.example.com',
      port: 6514,
    });
    expect(drainTarget('https://logs.example.com/x')).toMatchObject({ kind: 'https', port: 443 });
    expect(drainTarget('syslog+tcp://[2001:db8::1]:514')).toMatchObject({ host: '2001:db8::1' });
  });

  it.each([
    ['http://logs.example.com/', /https:\/\/, syslog/],
    ['syslog+udp://logs.example.com:514', /https:\/\/, syslog/],
    ['syslog+tcp://logs.example.com', /must give a port/],
    ['syslog+tcp://logs.example.com:514/x', /nothing after the port/],
    ['syslog+tcp://logs.example.com:514?x', /nothing after the port/],
    ['https://a:b@logs.example.com/', /user name or password/],
    ['nonsense', /not a valid URL/],
    ['syslog+tcp://10.0.0.1:514', /may not reach it/],
    ['syslog+tcp://127.0.0.1:514', /may not reach it/],
    ['https://[::ffff:169.254.169.254]/', /may not reach it/],
  ])('refuses %s', (url, msg) => {
    expect(() => parseDrainUrl(url, none)).toThrow(msg);
  });

  it('lets loopback through the allow-list only', () => {
    expect(parseDrainUrl('syslog+tcp://127.0.0.1:514', loopback)).toBe(
      'syslog+tcp://127.0.0.1:514',
    );
    expect(() => parseDrainUrl('syslog+tcp://127.0.0.2:514', loopback)).toThrow(/may not reach it/);
  });

  it('reads a create and a PATCH body', () => {
    expect(parseLogDrainSpec({ url: 'https://x.example/', code_name: '' }, none, false)).toEqual({
      url: 'https://x.example/',
      codeName: null,
    });
    expect(parseLogDrainSpec({ code_name: null }, none, true)).toEqual({ codeName: null });
    expect(() => parseLogDrainSpec({}, none, false)).toThrow(/url/);
    expect(() =>
      parseLogDrainSpec({ url: 'https://x.example/', code_name: 3 }, none, false),
    ).toThrow(/code_name/);
  });
});
