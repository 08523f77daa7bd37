import Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync, createGzip } from 'node:zlib';
import {
  call,
  e2e,
  getTask,
  newProject,
  queueTask,
  taskLog,
  TestProject,
  waitForTask,
  waitUntil,
} from './support/kiln';
import { buildTestImage, craftTar, docker, registryGet, tarHeader } from './support/images';

/**
 * Uploaded images (issue 5): a `docker save` tarball goes through the API into the platform
 * registry as kiln/<project>/<code>, and tasks run it by digest.
 */
describe('image uploads', () => {
  const registry = process.env.REGISTRY_URL!;
  const engine = new Docker({ socketPath: process.env.DOCKER_SOCKET });
  const run = randomBytes(3).toString('hex');
  const tagA = `kiln-test5/upload-${run}:a`;
  const tagB = `kiln-test5/upload-${run}:b`;
  let dir: string;
  let tarA: Buffer;
  let tarB: Buffer;
  let project: TestProject;
  const spool = () => e2e().env.KILN_UPLOAD_SPOOL_DIR;

  const present = (ref: string) =>
    engine
      .getImage(ref)
      .inspect()
      .then(
        () => true,
        () => false,
      );

  const multipart = (data: Record<string, unknown>, file: Buffer, fileName = 'image.tar') => {
    const form = new FormData();
    form.append('data', JSON.stringify(data));
    form.append('file', new Blob([file]), fileName);
    return form;
  };

  const uploadForm = (p: TestProject, data: Record<string, unknown>, file: Buffer) =>
    call('POST', `/2/projects/${p.projectId}/codes`, {
      token: p.token,
      body: multipart(data, file),
    });

  const uploadRaw = (p: TestProject, name: string, body: Buffer, type = 'application/x-tar') =>
    call('POST', `/2/projects/${p.projectId}/codes/${encodeURIComponent(name)}/image`, {
      token: p.token,
      body,
      headers: { 'content-type': type },
    });

  /** The repository has no tags at all: nothing was pushed there. */
  const expectNothingPushed = async (p: TestProject, name: string) => {
    const tags = await registryGet(`/v2/kiln/${p.projectId}/${name}/tags/list`);
    expect(tags.status).toBe(404);
    // The catalog from this project's prefix on (it lists every run's repositories).
    const catalog = await registryGet(`/v2/_catalog?n=1000&last=kiln/${p.projectId}/`);
    expect(catalog.status).toBe(200);
    expect(catalog.body.repositories).not.toContain(`kiln/${p.projectId}/${name}`);
  };

  const expectSpoolEmpty = () => {
    expect(existsSync(spool()) ? readdirSync(spool()) : []).toEqual([]);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kiln-test5-uploads-'));
    buildTestImage(tagA, 'a');
    buildTestImage(tagB, 'b');
    docker(['save', '-o', join(dir, 'a.tar'), tagA]);
    docker(['save', '-o', join(dir, 'b.tar'), tagB]);
    tarA = readFileSync(join(dir, 'a.tar'));
    tarB = readFileSync(join(dir, 'b.tar'));
    project = await newProject('uploads');
  }, 120_000);

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    for (const tag of [tagA, tagB]) {
      try {
        docker(['rmi', tag]);
      } catch {
        // already gone
      }
    }
  });

  it('a plain tarball in the multipart form runs by digest, pulled from the platform registry', async () => {
    const res = await uploadForm(project, { name: 'hello', env_vars: { GREETING: 'hi' } }, tarA);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ msg: 'Upload successful.', rev: 1 });
    expect(res.body.id).toMatch(/^[0-9a-f]{24}$/);
    const image: string = res.body.image;
    expect(image).toMatch(
      new RegExp(
        `^${registry.replace(/\./g, '\\.')}/kiln/${project.projectId}/hello@sha256:[0-9a-f]{64}$`,
      ),
    );
    const digest = image.split('@')[1];
    const manifest = await registryGet(
      `/v2/kiln/${project.projectId}/hello/manifests/${digest}`,
      'application/vnd.docker.distribution.manifest.v2+json',
    );
    expect(manifest.status).toBe(200);
    expect(manifest.body.layers).toHaveLength(2);
    expect(await present(image)).toBe(false);

    const code = await call('GET', `/2/projects/${project.projectId}/codes/${res.body.id}`, {
      token: project.token,
    });
    expect(code.body).toMatchObject({ image, rev: 1, env_vars: { GREETING: 'hi' } });

    const id = await queueTask(project, { code_name: 'hello', payload: '{"n":1}' });
    const task = await waitForTask(project, id);
    expect(task).toMatchObject({ status: 'complete', msg: '' });
    expect((await taskLog(project, id)).text).toBe('variant=a\n{"n":1}');
    expect(await present(image)).toBe(true);
    expectSpoolEmpty();
  });

  it('a gzip tarball on the raw route is a new revision; tasks queued before it run the old image', async () => {
    const before = await uploadRaw(project, 'revs', tarA);
    expect(before.status).toBe(200);
    expect(before.body.rev).toBe(1);
    // Settings of the code stay as they are when only its image changes.
    const settings = await call('POST', `/2/projects/${project.projectId}/codes`, {
      token: project.token,
      json: { name: 'revs', image: before.body.image, env_vars: { KEEP: 'me' }, retries: 2 },
    });
    expect(settings.status).toBe(200);
    const early = await queueTask(project, { code_name: 'revs', payload: '{"early":1}', delay: 4 });

    const after = await uploadRaw(project, 'revs', gzipSync(tarB), 'application/gzip');
    expect(after.status).toBe(200);
    expect(after.body).toMatchObject({ id: before.body.id, rev: 3, msg: 'Upload successful.' });
    expect(after.body.image).not.toBe(before.body.image);
    const code = await call('GET', `/2/projects/${project.projectId}/codes/${before.body.id}`, {
      token: project.token,
    });
    expect(code.body).toMatchObject({
      rev: 3,
      image: after.body.image,
      env_vars: { KEEP: 'me' },
      retries: 2,
    });

    const late = await queueTask(project, { code_name: 'revs', payload: '{"late":1}' });
    const [earlyTask, lateTask] = await Promise.all([
      waitForTask(project, early),
      waitForTask(project, late),
    ]);
    expect(earlyTask.status).toBe('complete');
    expect(lateTask.status).toBe('complete');
    expect((await taskLog(project, early)).text).toBe('variant=a\n{"early":1}');
    expect((await taskLog(project, late)).text).toBe('variant=b\n{"late":1}');
    expectSpoolEmpty();
  });

  it('two tasks needing a new image pull it once', async () => {
    const res = await uploadRaw(project, 'twice', tarB);
    expect(res.status).toBe(200);
    const since = Math.floor(Date.now() / 1000) - 1;
    const ids = await Promise.all([
      queueTask(project, { code_name: 'twice', payload: '{"t":1}' }),
      queueTask(project, { code_name: 'twice', payload: '{"t":2}' }),
    ]);
    for (const id of ids) expect((await waitForTask(project, id)).status).toBe('complete');
    const events = await engine.getEvents({
      since,
      until: Math.floor(Date.now() / 1000) + 1,
      filters: { type: ['image'], event: ['pull'] },
    });
    const text = await new Promise<string>((resolve, reject) => {
      let out = '';
      events.on('data', (chunk: Buffer) => (out += chunk.toString()));
      events.on('end', () => resolve(out));
      events.on('error', reject);
    });
    const pulls = text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { id?: string; Actor?: { ID?: string } })
      .filter((event) =>
        (event.id ?? event.Actor?.ID ?? '').startsWith(res.body.image.split('@')[0]),
      );
    expect(pulls).toHaveLength(1);
  });

  it("a tarball tagged as another project's image changes nothing for that project", async () => {
    const victim = await newProject('victim');
    const theirs = await uploadRaw(victim, 'job', tarA);
    expect(theirs.status).toBe(200);
    const victimTags = await registryGet(`/v2/kiln/${victim.projectId}/job/tags/list`);
    const victimLatest = await registryGet(
      `/v2/kiln/${victim.projectId}/job/manifests/latest`,
      'application/vnd.docker.distribution.manifest.v2+json',
    );

    const forged = `${registry}/kiln/${victim.projectId}/job:latest`;
    docker(['tag', tagB, forged]);
    try {
      docker(['save', '-o', join(dir, 'forged.tar'), forged]);
    } finally {
      docker(['rmi', forged]);
    }
    const attacker = await newProject('attacker');
    const mine = await uploadRaw(attacker, 'job', readFileSync(join(dir, 'forged.tar')));
    expect(mine.status).toBe(200);
    expect(mine.body.image.startsWith(`${registry}/kiln/${attacker.projectId}/job@`)).toBe(true);

    expect(await registryGet(`/v2/kiln/${victim.projectId}/job/tags/list`)).toMatchObject({
      status: 200,
      body: victimTags.body,
    });
    const latestNow = await registryGet(
      `/v2/kiln/${victim.projectId}/job/manifests/latest`,
      'application/vnd.docker.distribution.manifest.v2+json',
    );
    expect(latestNow.headers.get('docker-content-digest')).toBe(
      victimLatest.headers.get('docker-content-digest'),
    );
    const victimCode = await call(
      'GET',
      `/2/projects/${victim.projectId}/codes/${theirs.body.id}`,
      {
        token: victim.token,
      },
    );
    expect(victimCode.body).toMatchObject({ rev: 1, image: theirs.body.image });

    // Naming the other project's upload by reference is refused too.
    const byRef = await call('POST', `/2/projects/${attacker.projectId}/codes`, {
      token: attacker.token,
      json: { name: 'steal', image: theirs.body.image },
    });
    expect(byRef.status).toBe(403);
    expect(byRef.body.msg).toMatch(/another project/);
  });

  describe('bad tarballs: a 4xx naming the problem, nothing pushed, nothing left on disk', () => {
    const config = JSON.stringify({
      rootfs: { type: 'layers', diff_ids: [`sha256:${'0'.repeat(64)}`] },
    });
    const cases: [string, () => Buffer, number, RegExp][] = [
      ['not-a-tar', () => randomBytes(4096), 400, /not a tar archive/],
      ['empty', () => Buffer.alloc(0), 400, /empty/],
      [
        'zip',
        () => Buffer.concat([Buffer.from('PK\u0003\u0004', 'latin1'), randomBytes(600)]),
        400,
        /^this is a zip, not a `docker save` tarball: send zip code packages as the `file` of `POST …\/codes`/,
      ],
      [
        'dotdot',
        () =>
          craftTar([
            { path: '../evil', content: 'x' },
            { path: 'manifest.json', content: '[]' },
          ]),
        400,
        /"\.\.\/evil" has a "\.\." path/,
      ],
      ['absolute', () => craftTar([{ path: '/etc/cron.d/x', content: 'x' }]), 400, /absolute path/],
      [
        'symlink',
        () => craftTar([{ path: 'layer.tar', type: '2', link: '../../etc/passwd' }]),
        400,
        /symlink "layer.tar" -> "..\/..\/etc\/passwd" points outside the archive/,
      ],
      ['device', () => craftTar([{ path: 'null', type: '3' }]), 400, /device file/],
      [
        'no-manifest',
        () => craftTar([{ path: 'hello.txt', content: 'hi' }]),
        400,
        /no manifest\.json/,
      ],
      [
        'digest',
        () =>
          craftTar([
            { path: 'l1/layer.tar', content: craftTar([{ path: 'file', content: 'data' }]) },
            { path: 'config.json', content: config },
            {
              path: 'manifest.json',
              content: JSON.stringify([{ Config: 'config.json', Layers: ['l1/layer.tar'] }]),
            },
          ]),
        400,
        /digest mismatch: layer 1 \("l1\/layer.tar"\) hashes to sha256:[0-9a-f]{64}, the image config says sha256:0{64}/,
      ],
    ];

    it.each(cases)('%s', async (name, body, status, message) => {
      const res = await uploadRaw(project, `bad-${name}`, body());
      expect(res.status).toBe(status);
      expect(res.body.msg).toMatch(message);
      await expectNothingPushed(project, `bad-${name}`);
      expectSpoolEmpty();
    });

    it('two images in one tarball', async () => {
      docker(['save', '-o', join(dir, 'two.tar'), tagA, tagB]);
      const res = await uploadForm(
        project,
        { name: 'bad-two' },
        readFileSync(join(dir, 'two.tar')),
      );
      expect(res.status).toBe(400);
      expect(res.body.msg).toMatch(/holds 2 images; upload exactly one/);
      await expectNothingPushed(project, 'bad-two');
      expectSpoolEmpty();
    });

    it('a layer that does not match its digest in a real `docker save`', async () => {
      // Flip one byte inside the busybox binary of the first layer.
      const tampered = Buffer.from(tarA);
      const at = tampered.indexOf(Buffer.from('BusyBox v'));
      expect(at).toBeGreaterThan(0);
      tampered[at] = 'b'.charCodeAt(0);
      const res = await uploadRaw(project, 'bad-tampered', tampered);
      expect(res.status).toBe(400);
      expect(res.body.msg).toMatch(/digest mismatch: layer 1/);
      await expectNothingPushed(project, 'bad-tampered');
      expectSpoolEmpty();
    });

    it('over the size cap: 413, declared or streamed', async () => {
      const cap = Number(e2e().env.KILN_UPLOAD_MAX_BYTES);
      const big = Buffer.concat([tarHeader('big/layer.tar', cap), Buffer.alloc(cap)]);
      const declared = await uploadRaw(project, 'bad-big', big);
      expect(declared.status).toBe(413);
      expect(declared.body.msg).toMatch(/larger than \d+ bytes \(KILN_UPLOAD_MAX_BYTES\)/);
      // In a multipart form the part's size is only known by counting it.
      const streamed = await uploadForm(project, { name: 'bad-big' }, big);
      expect(streamed.status).toBe(413);
      expect(streamed.body.msg).toMatch(/KILN_UPLOAD_MAX_BYTES/);
      await expectNothingPushed(project, 'bad-big');
      expectSpoolEmpty();
    });

    it('a gzip bomb is refused early', async () => {
      // 300 MB of zeros in a tar entry, about 300 KB once gzipped.
      const size = 300 * 1024 * 1024;
      const gzip = createGzip({ level: 9 });
      const chunks: Buffer[] = [];
      gzip.on('data', (chunk: Buffer) => chunks.push(chunk));
      const done = new Promise((resolve) => gzip.on('end', resolve));
      Readable.from(
        (function* () {
          yield tarHeader('bomb/layer.tar', size);
          const zeros = Buffer.alloc(1024 * 1024);
          for (let i = 0; i < size / zeros.length; i++) yield zeros;
        })(),
      ).pipe(gzip);
      await done;
      const bomb = Buffer.concat(chunks);
      expect(bomb.length).toBeLessThan(2 * 1024 * 1024);
      const res = await uploadRaw(project, 'bad-bomb', bomb, 'application/gzip');
      expect(res.status).toBe(400);
      expect(res.body.msg).toMatch(/gzip bomb/);
      await expectNothingPushed(project, 'bad-bomb');
      expectSpoolEmpty();
    }, 60_000);

    it('a JSON body on the raw route is 415', async () => {
      const res = await call('POST', `/2/projects/${project.projectId}/codes/x/image`, {
        token: project.token,
        json: { name: 'x' },
      });
      expect(res.status).toBe(415);
      expect(res.body.msg).toMatch(/tarball/);
    });
  });

  it('the worker removes an image it pulled once unused for KILN_IMAGE_GC_SECONDS, and no other', async () => {
    const res = await uploadRaw(project, 'collected', tarB);
    expect(res.status).toBe(200);
    const id = await queueTask(project, { code_name: 'collected', payload: '{}' });
    expect((await waitForTask(project, id)).status).toBe('complete');
    expect(await present(res.body.image)).toBe(true);
    const gcMs = Number(e2e().env.KILN_IMAGE_GC_SECONDS) * 1000;
    await waitUntil('the image removed', async () => !(await present(res.body.image)), {
      timeoutMs: 3 * gcMs + 30_000,
      intervalMs: 500,
    });
    expect(await present(res.body.image)).toBe(false);
    // Images the worker did not pull stay, however long unused.
    expect(await present('kiln-test/busybox:latest')).toBe(true);
    expect(await present(tagA)).toBe(true);
    // A task needing it again pulls it again.
    const again = await queueTask(project, { code_name: 'collected', payload: '{"again":1}' });
    expect((await waitForTask(project, again)).status).toBe('complete');
    expect((await getTask(project, again)).msg).toBe('');
  }, 120_000);
});
