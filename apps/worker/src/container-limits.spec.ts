import { writableRootProblem } from './container-limits';

describe('writableRootProblem', () => {
  it('refuses a storage driver that cannot cap a container, naming it', () => {
    expect(
      writableRootProblem({ cpus: 2, driver: 'overlay2', backingFilesystem: 'extfs' }),
    ).toMatch(
      /storage driver, overlay2 on extfs, cannot cap .* overlay2 on xfs mounted with pquota/,
    );
    expect(writableRootProblem({ cpus: 2, driver: 'vfs', backingFilesystem: undefined })).toMatch(
      /storage driver, vfs, cannot cap/,
    );
  });

  it('lets overlay2 on xfs (pquota is tried by a probe container), btrfs and zfs through', () => {
    expect(writableRootProblem({ cpus: 2, driver: 'overlay2', backingFilesystem: 'xfs' })).toBe(
      undefined,
    );
    expect(writableRootProblem({ cpus: 2, driver: 'btrfs', backingFilesystem: 'btrfs' })).toBe(
      undefined,
    );
    expect(writableRootProblem({ cpus: 2, driver: 'zfs', backingFilesystem: undefined })).toBe(
      undefined,
    );
  });
});
