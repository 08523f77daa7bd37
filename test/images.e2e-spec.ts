import { execFileSync } from 'node:child_process';
import Docker from 'dockerode';
import { AuthRegistry, startRegistry } from './support/auth-registry';
import {
  newProject,
  queueTask,
  registerCode,
  taskLog,
  TestProject,
  waitForTask,
} from './support/kiln';

/**
 * Images come from the worker's engine when present, else are pulled while the task is
 * `preparing`. The registry here is an anonymous one of the test's own, as a public registry is to
 * its pulls (the platform registry takes no anonymous pulls: test/service-credentials).
 */
describe('images', () => {
  let project: TestProject;
  let open: AuthRegistry;
  let registry: string;
  const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET });
  const dockerCli = (...args: string[]) =>
    execFileSync('docker', ['-H', `unix://${process.env.DOCKER_SOCKET}`, ...args], {
      stdio: 'pipe',
    });

  beforeAll(async () => {
    project = await newProject('images');
    open = await startRegistry();
    registry = open.host;
  });

  afterAll(async () => {
    await open?.stop();
  });

  it('pulls a missing image from a registry, then runs the task', async () => {
    const ref = `${registry}/kiln-test/pulled:${Date.now()}`;
    dockerCli('tag', 'kiln-test/busybox:latest', ref);
    dockerCli('push', ref);
    dockerCli('rmi', ref);
    expect(
      await docker
        .getImage(ref)
        .inspect()
        .then(
          () => true,
          () => false,
        ),
    ).toBe(false);
    await registerCode(project, 'pulled', { image: ref });
    const id = await queueTask(project, { code_name: 'pulled', payload: '{"pulled":1}' });
    const task = await waitForTask(project, id);
    expect(task).toMatchObject({ status: 'complete', msg: '' });
    expect((await taskLog(project, id)).text).toBe('{"pulled":1}\n');
    expect(
      await docker
        .getImage(ref)
        .inspect()
        .then(
          () => true,
          () => false,
        ),
    ).toBe(true);
  });

  it('a pull failure ends the task `error` with the reason in msg', async () => {
    await registerCode(project, 'missing', { image: `${registry}/kiln-test/does-not-exist:1` });
    const id = await queueTask(project, { code_name: 'missing', payload: '{}' });
    const task = await waitForTask(project, id);
    expect(task.status).toBe('error');
    expect(task.msg).toContain(`Could not pull image ${registry}/kiln-test/does-not-exist:1`);
    expect(task.msg).toMatch(/not found|manifest unknown/i);
  });
});
