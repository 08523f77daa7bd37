import { ConfigError, loadConfig } from './config';

const base = {
  DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db',
  REDIS_URL: 'redis://127.0.0.1:6379',
};

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig(base);
    expect(config.api.port).toBe(8080);
    expect(config.tasks.defaultTimeout).toBe(3600);
    expect(config.tasks.maxPayloadBytes).toBe(65536);
    expect(config.tasks.maxLogBytes).toBe(8 * 1024 * 1024);
    expect(config.worker.cluster).toBe('default');
    expect(config.container.network).toBe('none');
    expect(config.adminToken).toBeUndefined();
    expect(config.container.contractDelivery).toBe('bind');
    expect(config.container.taskFilesDir).toMatch(/^\/.*kiln-task-files$/);
    expect(config.container.taskDirMb).toBe(256);
  });

  it('refuses an unknown contract delivery and a relative task files directory', () => {
    expect(() => loadConfig({ ...base, KILN_CONTRACT_DELIVERY: 'copy' })).toThrow(
      /KILN_CONTRACT_DELIVERY must be one of bind, archive/,
    );
    expect(() => loadConfig({ ...base, KILN_TASK_FILES_DIR: 'task-files' })).toThrow(
      /KILN_TASK_FILES_DIR must be an absolute path/,
    );
  });

  it('names every bad variable at once', () => {
    let caught: unknown;
    try {
      loadConfig({
        REDIS_URL: 'http://x',
        KILN_API_PORT: 'eighty',
        KILN_WORKER_CLUSTER: 'bad name',
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const message = (caught as Error).message;
    expect(message).toContain('DATABASE_URL is required');
    expect(message).toContain('REDIS_URL must start with redis:');
    expect(message).toContain('KILN_API_PORT must be an integer');
    expect(message).toContain('KILN_WORKER_CLUSTER');
  });

  it('refuses a default timeout above the maximum', () => {
    expect(() =>
      loadConfig({ ...base, KILN_TASK_TIMEOUT_DEFAULT: '7200', KILN_TASK_TIMEOUT_MAX: '3600' }),
    ).toThrow(/KILN_TASK_TIMEOUT_DEFAULT must not exceed/);
  });
});
