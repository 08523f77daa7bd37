import { pathOf } from './access-log';

describe('pathOf', () => {
  it('drops the query string, where tokens and trigger secrets travel', () => {
    expect(pathOf('/2/projects/p1/tasks/t1/log?follow=1&oauth=kiln_secrettoken1')).toBe(
      '/2/projects/p1/tasks/t1/log',
    );
    expect(pathOf('/2/projects/p1/triggers/t1?secret=s3cret')).toBe('/2/projects/p1/triggers/t1');
  });

  it('cuts a very long path', () => {
    expect(pathOf(`/${'a'.repeat(2000)}`)).toHaveLength(513);
  });

  it('redacts a token put in the path itself', () => {
    expect(pathOf('/2/kiln_secrettoken2/x')).not.toContain('secrettoken2');
  });
});
