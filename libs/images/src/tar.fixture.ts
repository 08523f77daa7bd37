/**
 * Hand-made ustar entries for the image specs: any type flag and link name, so that the readers
 * can be shown what a hostile tarball holds (links out of the archive, devices, pax headers).
 * Test code only (excluded from the build, like the specs).
 */
export function tarEntry(path: string, content: Buffer | string, type = '0', link = ''): Buffer {
  const body = Buffer.from(content);
  const block = Buffer.alloc(512, 0);
  block.write(path, 0, 100, 'utf8');
  block.write('0000644\0', 100, 8, 'ascii');
  block.write(body.length.toString(8).padStart(11, '0') + '\0', 124, 12, 'ascii');
  block.fill(' ', 148, 156);
  block.write(type, 156, 1, 'ascii');
  block.write(link, 157, 100, 'utf8');
  block.write('ustar\u000000', 257, 8, 'ascii');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return Buffer.concat([block, body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}
