import {
  normalizeServerAddress,
  registryHostOf,
  repositoryComponent,
  repositoryOf,
  uploadRepository,
} from './image-names';

describe('image names', () => {
  it('puts uploads under kiln/<project id>/, keeping valid names as they are', () => {
    expect(uploadRepository('6b042a22b5fc0c4510f2eb53', 'hello')).toBe(
      'kiln/6b042a22b5fc0c4510f2eb53/hello',
    );
  });

  it.each(['user/hello', 'Hello', 'a b', '..', '-x-', 'a'.repeat(120)])(
    'makes "%s" a valid, distinct repository component',
    (name) => {
      const component = repositoryComponent(name);
      expect(component).toMatch(/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/);
      expect(component.length).toBeLessThanOrEqual(80);
      expect(component).not.toBe(repositoryComponent(`${name}2`));
    },
  );

  it.each([
    ['busybox', 'docker.io', 'busybox'],
    ['library/busybox:1', 'docker.io', 'library/busybox'],
    ['docker.io/team/job:1', 'docker.io', 'team/job'],
    ['127.0.0.1:55000/kiln/p/n@sha256:' + 'a'.repeat(64), '127.0.0.1:55000', 'kiln/p/n'],
    ['localhost/x/y', 'localhost', 'x/y'],
    ['Registry.Example.com/a/b:tag', 'registry.example.com', 'a/b'],
  ])('%s is on %s, repository %s', (ref, host, repository) => {
    expect(registryHostOf(ref)).toBe(host);
    expect(repositoryOf(ref)).toBe(repository);
  });

  it.each([
    ['https://index.docker.io/v1/', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['http://127.0.0.1:55100', '127.0.0.1:55100'],
    ['Registry.Example.com/v2/', 'registry.example.com'],
  ])('serveraddress %s is %s', (address, host) => {
    expect(normalizeServerAddress(address)).toBe(host);
  });
});
