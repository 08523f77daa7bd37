import { KilnException, parseHostPatterns } from '@kiln/common';
import { KilnConfig } from '@kiln/config';
import { CredentialsService } from './credentials.service';
import { ImageAccess, ImageAccessError } from './image-access';
import { fullName, imageIdProblem, isSharedImage } from './image-names';

const A = '6b042a22b5fc0c4510f2eb53';
const B = '7c153b33c6ad1d5621a3fc64';
const ID = 'f'.repeat(64);

function access(
  registries: string,
  shared: string[] = ['kiln-test/*'],
  login: { username?: string; password?: string } = {},
): ImageAccess {
  const config = {
    registry: {
      baseUrl: 'http://127.0.0.1:55000',
      host: '127.0.0.1:55000',
      username: login.username,
      password: login.password,
    },
    images: {
      gcSeconds: 0,
      registries: parseHostPatterns(registries).entries,
      sharedImages: shared,
    },
  } as unknown as KilnConfig;
  const credentials = { authFor: () => Promise.resolve(null) } as unknown as CredentialsService;
  return new ImageAccess(config, credentials);
}

async function refusal(check: Promise<void>): Promise<{ status: string; msg: string }> {
  try {
    await check;
  } catch (error) {
    if (error instanceof KilnException) return { status: error.code, msg: error.message };
    throw error;
  }
  throw new Error('accepted');
}

describe('image names', () => {
  it.each([ID, `sha256:${ID}`, 'f3a9c2', `SHA256:${ID}`])('treats "%s" as an image id', (ref) => {
    expect(imageIdProblem(ref)).toMatch(/image id/);
  });

  it.each(['busybox', 'f3a9c2:latest', 'kiln-test/busybox', `busybox@sha256:${ID}`])(
    'takes "%s" as a name',
    (ref) => expect(imageIdProblem(ref)).toBeNull(),
  );

  it('names images as Docker reads them', () => {
    expect(fullName('busybox:1')).toBe('docker.io/library/busybox');
    expect(fullName('kiln-test/busybox:latest')).toBe('docker.io/kiln-test/busybox');
    expect(fullName('localhost:5000/a/b@sha256:' + ID)).toBe('localhost:5000/a/b');
  });

  it('matches shared patterns on the whole name, `*` within a component', () => {
    const shared = ['kiln-test/*', 'registry.example.com/base/**'];
    expect(isSharedImage(shared, 'kiln-test/busybox:latest')).toBe(true);
    expect(isSharedImage(shared, 'docker.io/kiln-test/busybox:alt')).toBe(true);
    expect(isSharedImage(shared, 'kiln-test/a/b')).toBe(false);
    expect(isSharedImage(shared, '127.0.0.1:55000/kiln-test/busybox')).toBe(false);
    expect(isSharedImage(shared, 'registry.example.com/base/x/y:1')).toBe(true);
    expect(isSharedImage(shared, 'registry.example.com/other/x')).toBe(false);
  });
});

describe('ImageAccess.checkRegistration', () => {
  it.each([
    `127.0.0.1:55000/kiln/${A}/job:latest`,
    `localhost:55000/kiln/${A}/job:latest`,
    `[::1]:55000/kiln/${A}/job@sha256:${ID}`,
    `[::ffff:127.0.0.1]:55000/kiln/${A}/job`,
    `0.0.0.0:55000/kiln/${A}/job`,
  ])("refuses %s, another project's upload, with a 403", async (ref) => {
    expect(await refusal(access('*:*').checkRegistration(B, ref))).toEqual({
      status: 'forbidden',
      msg: expect.stringMatching(/another project's uploads/),
    });
  });

  it("refuses another project's upload even when a shared pattern names it", async () => {
    const shared = access('*:*', ['127.0.0.1:55000/**']);
    expect(
      await refusal(shared.checkRegistration(B, `127.0.0.1:55000/kiln/${A}/job:latest`)),
    ).toMatchObject({ status: 'forbidden' });
  });

  it("takes the project's own uploads by any spelling, and shared images", async () => {
    await access('').checkRegistration(A, `localhost:55000/kiln/${A}/job:latest`);
    await access('').checkRegistration(A, 'kiln-test/busybox:latest');
    await access('').checkRegistration(A, '127.0.0.1:55000/kiln-test/pulled:1');
  });

  it.each([
    [`sha256:${ID}`, /image id/],
    [ID, /image id/],
    ['evil.example.com/x:1', /registry evil.example.com is not allowed/],
    ['busybox', /registry docker.io is not allowed/],
  ])('refuses %s with a 400', async (ref, msg) => {
    expect(await refusal(access('registry.example.com').checkRegistration(A, ref))).toEqual({
      status: 'bad_request',
      msg: expect.stringMatching(msg),
    });
  });

  it.each([
    ['localhost:5000/x', /resolves to 127\.0\.0\.1, a loopback address/],
    ['127.0.0.1:55001/x', /a loopback address/],
    ['169.254.169.254/latest/x', /link-local/],
    ['10.1.2.3:5000/x', /a private address/],
    ['2130706433:55001/x', /a loopback address/],
  ])('refuses %s, a registry on an address no image may come from', async (ref, msg) => {
    expect(await refusal(access('*:*').checkRegistration(A, ref))).toEqual({
      status: 'bad_request',
      msg: expect.stringMatching(msg),
    });
  });

  it('lets a loopback registry through when an entry names it literally', async () => {
    await access('*:*,127.0.0.1:*').checkRegistration(A, '127.0.0.1:55001/private/job:1');
    expect(
      await refusal(access('*:*,127.0.0.1:*').checkRegistration(A, 'localhost:55001/x')),
    ).toMatchObject({ status: 'bad_request' });
  });
});

describe('ImageAccess.confirm', () => {
  it('refuses image ids and other projects’ uploads before asking any registry', async () => {
    const check = access('*:*');
    await expect(check.confirm(B, `sha256:${ID}`)).rejects.toThrow(ImageAccessError);
    await expect(check.confirm(B, `localhost:55000/kiln/${A}/job:latest`)).rejects.toThrow(
      /another project's uploads/,
    );
  });

  it('runs a shared image as it is named', async () => {
    expect(await access('').confirm(A, 'kiln-test/busybox:latest')).toEqual({
      image: 'kiln-test/busybox:latest',
      pull: 'kiln-test/busybox:latest',
      login: undefined,
    });
  });

  it("pulls a shared image of the platform registry with Kiln's login, and gives it to nothing else", async () => {
    const login = { username: 'kiln', password: 'secret-password-1' };
    const check = access('', ['127.0.0.1:55000/base/*', 'kiln-test/*'], login);
    expect(await check.confirm(A, '127.0.0.1:55000/base/tool:1')).toEqual({
      image: '127.0.0.1:55000/base/tool:1',
      pull: '127.0.0.1:55000/base/tool:1',
      login: { ...login, serveraddress: '127.0.0.1:55000' },
    });
    // A shared image from elsewhere is pulled anonymously: the platform's login stays home.
    expect((await check.confirm(A, 'kiln-test/busybox:latest')).login).toBeUndefined();
  });
});
