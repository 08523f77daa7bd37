import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import {
  call,
  e2e,
  newProject,
  queueTask,
  taskLog,
  TestProject,
  waitForTask,
} from './support/kiln';
import { registryGet } from './support/images';
import { deflateBomb, FixtureEntry, zipOf } from '../libs/images/src/zip.fixture';

/**
 * Zip code packages (issue 20): a zip in `POST codes` is checked whole, stored in the platform
 * registry under the project's own repository, recorded by digest on a new revision, served back
 * by `…/download`, and (below) unpacked into the task's directory on the worker.
 */
describe('zip code packages', () => {
  let project: TestProject;
  let other: TestProject;
  const spool = () => e2e().env.KILN_UPLOAD_SPOOL_DIR;
  const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

  const upload = (p: TestProject, data: Record<string, unknown>, zip: Buffer) => {
    const form = new FormData();
    form.append('data', JSON.stringify(data));
    form.append('file', new Blob([zip], { type: 'application/zip' }), 'code.zip');
    return call('POST', `/2/projects/${p.projectId}/codes`, { token: p.token, body: form });
  };

  const download = async (p: TestProject, owner: TestProject, codeId: string, query = '') => {
    const res = await fetch(
      `${e2e().url}/2/projects/${owner.projectId}/codes/${codeId}/download${query}`,
      { headers: { authorization: `OAuth ${p.token}` } },
    );
    return {
      status: res.status,
      type: res.headers.get('content-type'),
      bytes: Buffer.from(await res.arrayBuffer()),
    };
  };

  const codeNames = async (p: TestProject) => {
    const res = await call('GET', `/2/projects/${p.projectId}/codes`, { token: p.token });
    expect(res.status).toBe(200);
    return (res.body.codes as { name: string }[]).map((code) => code.name);
  };

  const zipTags = (p: TestProject) => registryGet(`/v2/kiln/${p.projectId}/zip/packages/tags/list`);

  const hello = zipOf([
    {
      name: 'hello.sh',
      content: 'echo "hello from the zip: $(cat data/word.txt)"\n',
      mode: 0o100755,
    },
    { name: 'data/', mode: 0o040755 },
    { name: 'data/word.txt', content: 'kiln\n' },
  ]);

  beforeAll(async () => {
    project = await newProject('zips');
    other = await newProject('zips-other');
  });

  it('GET /2/stacks lists the operator stacks by name, a plain array as IronWorker answered', async () => {
    const res = await call('GET', '/2/stacks', { token: project.token });
    expect(res.status).toBe(200);
    expect(res.body).toEqual(['node', 'busybox']);
    expect((await call('GET', '/2/stacks')).status).toBe(401);
  });

  describe('upload and download', () => {
    let codeId: string;

    it('stores the zip by digest on a new revision, in the project own registry repository', async () => {
      const res = await upload(
        project,
        { name: 'hello', image: 'kiln-test/busybox:latest', command: 'sh hello.sh' },
        hello,
      );
      expect(res.status).toBe(200);
      const digest = `sha256:${sha256(hello)}`;
      expect(res.body).toMatchObject({ msg: 'Upload successful.', rev: 1, zip_digest: digest });
      codeId = res.body.id;
      const code = await call('GET', `/2/projects/${project.projectId}/codes/${codeId}`, {
        token: project.token,
      });
      expect(code.body).toMatchObject({
        latest_checksum: sha256(hello),
        zip_digest: digest,
        command: 'sh hello.sh',
      });
      const revisions = await call(
        'GET',
        `/2/projects/${project.projectId}/codes/${codeId}/revisions`,
        { token: project.token },
      );
      expect(revisions.body.revisions[0]).toMatchObject({ rev: 1, zip_digest: digest });
      const tags = await zipTags(project);
      expect(tags.body.tags).toEqual([`zip-${sha256(hello)}`]);
      const blob = await registryGet(`/v2/kiln/${project.projectId}/zip/packages/blobs/${digest}`);
      expect(blob.status).toBe(200);
    });

    it('downloads the same bytes, and the generated zip for an image-only revision', async () => {
      const got = await download(project, project, codeId);
      expect(got.status).toBe(200);
      expect(got.type).toBe('application/zip');
      expect(got.bytes.equals(hello)).toBe(true);
      const imageOnly = await call('POST', `/2/projects/${project.projectId}/codes`, {
        token: project.token,
        json: { name: 'hello', image: 'kiln-test/busybox:latest' },
      });
      expect(imageOnly.status).toBe(200);
      const generated = await download(project, project, codeId);
      expect(generated.bytes.toString('latin1')).toContain('kiln-code.json');
      expect(generated.bytes.equals(hello)).toBe(false);
      const first = await download(project, project, codeId, '?revision=1');
      expect(first.bytes.equals(hello)).toBe(true);
      const code = await call('GET', `/2/projects/${project.projectId}/codes/${codeId}`, {
        token: project.token,
      });
      expect(code.body).toMatchObject({ rev: 2, latest_checksum: '', zip_digest: null });
    });

    it('another project can neither download the zip nor reach its blob through its own repository', async () => {
      const theirs = await download(other, project, codeId, '?revision=1');
      // Its token is not one of the first project's.
      expect(theirs.status).toBe(401);
      expect(theirs.bytes.equals(hello)).toBe(false);
      // A registration naming the digest does not attach it: only an upload sets a zip.
      const named = await call('POST', `/2/projects/${other.projectId}/codes`, {
        token: other.token,
        json: {
          name: 'steal',
          image: 'kiln-test/busybox:latest',
          zip_digest: `sha256:${sha256(hello)}`,
        },
      });
      expect(named.status).toBe(200);
      const stolen = await call('GET', `/2/projects/${other.projectId}/codes/${named.body.id}`, {
        token: other.token,
      });
      expect(stolen.body.zip_digest).toBeNull();
      // Its own zip repository exists once it uploads; the first project's blob is not in it.
      const own = zipOf([{ name: 'mine.txt', content: 'mine' }]);
      expect(
        (
          await upload(
            other,
            { name: 'mine', image: 'kiln-test/busybox:latest', command: 'cat mine.txt' },
            own,
          )
        ).status,
      ).toBe(200);
      const crossed = await registryGet(
        `/v2/kiln/${other.projectId}/zip/packages/blobs/sha256:${sha256(hello)}`,
      );
      expect(crossed.status).toBe(404);
    });
  });

  describe('running them', () => {
    const script = zipOf([
      {
        name: 'run.sh',
        content: [
          'echo "cwd $(pwd), word $(cat data/word.txt)"',
          // The files are the task's own: writable, in its scratch directory.
          'echo again >> data/word.txt && echo "lines $(wc -l < data/word.txt)"',
          'sh bin/tool.sh',
        ].join('\n'),
      },
      { name: 'data/word.txt', content: 'kiln\n' },
      {
        name: 'bin/tool.sh',
        content: 'echo "tool ran with $(cat "$PAYLOAD_FILE")"\n',
        mode: 0o100755,
      },
    ]);

    const runs = async (p: TestProject, code: string, payload: string) => {
      const id = await queueTask(p, { code_name: code, payload });
      const task = await waitForTask(p, id);
      const log = await taskLog(p, id);
      return { task, log: log.text };
    };

    it('a zip + image + command task completes with the script output in its log', async () => {
      const res = await upload(
        project,
        { name: 'zip-run', image: 'kiln-test/busybox:latest', command: 'sh run.sh' },
        script,
      );
      expect(res.status).toBe(200);
      const { task, log } = await runs(project, 'zip-run', 'p1');
      expect(task.status).toBe('complete');
      expect(log).toContain('cwd /mnt/task, word kiln');
      expect(log).toContain('lines 2');
      expect(log).toContain('tool ran with p1');
    });

    it('a zip with a stack and no image runs on the stack image; runtime + file_name make the command', async () => {
      const res = await upload(
        project,
        { name: 'zip-stack', stack: 'busybox', runtime: 'sh', file_name: 'run.sh' },
        script,
      );
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ image: 'kiln-test/busybox:latest' });
      const code = await call('GET', `/2/projects/${project.projectId}/codes/${res.body.id}`, {
        token: project.token,
      });
      expect(code.body.command).toBe('sh run.sh');
      const { task, log } = await runs(project, 'zip-stack', 'p2');
      expect(task.status).toBe('complete');
      expect(log).toContain('tool ran with p2');
    });

    it('the other project runs its own zip of the same code name, never the first one', async () => {
      const mine = zipOf([{ name: 'run.sh', content: 'echo "this is the other project"\n' }]);
      const res = await upload(
        other,
        { name: 'zip-run', image: 'kiln-test/busybox:latest', command: 'sh run.sh' },
        mine,
      );
      expect(res.status).toBe(200);
      const { task, log } = await runs(other, 'zip-run', 'p3');
      expect(task.status).toBe('complete');
      expect(log).toContain('this is the other project');
      expect(log).not.toContain('tool ran');
    });
  });

  describe('bad zips: a 400 naming the problem, no revision, no blob, nothing left on disk', () => {
    let victim: TestProject;
    beforeAll(async () => {
      victim = await newProject('zips-bad');
    });

    const many = (n: number): FixtureEntry[] =>
      Array.from({ length: n }, (_, i) => ({ name: `f${i}.txt`, content: 'x' }));
    const cases: [string, () => Buffer, RegExp][] = [
      [
        'zip-slip',
        () =>
          zipOf([
            { name: 'ok.txt', content: 'ok' },
            { name: '../../etc/cron.d/evil', content: 'x' },
          ]),
        /escapes the directory/,
      ],
      ['absolute', () => zipOf([{ name: '/etc/passwd', content: 'x' }]), /absolute/],
      [
        'symlink',
        () => zipOf([{ name: 'link', content: '/etc/shadow', mode: 0o120777 }]),
        /symbolic link/,
      ],
      ['device', () => zipOf([{ name: 'disk', mode: 0o060660 }]), /device file/],
      // Three entries each claiming 4 GiB: 12 GB unpacked, refused from the central directory.
      [
        'claimed bomb',
        () =>
          zipOf([0, 1, 2].map((i) => ({ name: `b${i}`, content: 'x', claimedSize: 2 ** 32 - 1 }))),
        /unpacks to more than 67108864 bytes/,
      ],
      // About 1 MB that inflates to 1 GiB, claiming 1 KiB: refused while inflating.
      [
        'lying bomb',
        () => zipOf([{ name: 'zeros', deflated: deflateBomb(1024), claimedSize: 1024 }]),
        /inflates to more than the 1024 bytes it claims/,
      ],
      ['too many entries', () => zipOf(many(1001)), /more than 1000 entries/],
      [
        'not a zip',
        () => Buffer.concat([Buffer.from('PK\u0003\u0004', 'latin1'), Buffer.alloc(600, 7)]),
        /not a zip/,
      ],
    ];

    it.each(cases)('%s', async (label, make, message) => {
      const name = `bad-${label.replace(/\W+/g, '-')}`;
      const res = await upload(victim, { name, image: 'kiln-test/busybox:latest' }, make());
      expect(res.status).toBe(400);
      expect(res.body.msg).toMatch(message);
      expect(await codeNames(victim)).not.toContain(name);
      expect((await zipTags(victim)).status).toBe(404);
      expect(existsSync(spool()) ? readdirSync(spool()) : []).toEqual([]);
    });

    it('a zip with an unknown stack, or no command, is a 400, nothing stored', async () => {
      const res = await upload(
        victim,
        { name: 'stackless', stack: 'cobol-85', command: 'sh hello.sh' },
        hello,
      );
      expect(res.status).toBe(400);
      expect(res.body.msg).toMatch(/no stack "cobol-85" on this server \(stacks: node, busybox\)/);
      const commandless = await upload(
        victim,
        { name: 'commandless', image: 'kiln-test/busybox:latest' },
        hello,
      );
      expect(commandless.status).toBe(400);
      expect(commandless.body.msg).toMatch(/a zip package needs "command" \(or "file_name"\)/);
      expect(await codeNames(victim)).not.toContain('stackless');
      expect(await codeNames(victim)).not.toContain('commandless');
      expect((await zipTags(victim)).status).toBe(404);
    });
  });
});
