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
    expect(config.container.taskFilesDir).toBe('/dev/shm/kiln-task-files');
    expect(config.container.taskDirMb).toBe(256);
  });

  it('container limits, image cap and pull deadline: the documented defaults', () => {
    const config = loadConfig(base);
    expect(config.container).toMatchObject({
      cpus: 1,
      cpusMax: 2,
      memoryMb: 512,
      memoryMbMax: 2048,
      nofile: 4096,
      tmpMb: 64,
      writableRootMb: 0,
    });
    expect(config.images.maxBytes).toBe(8 * 1024 ** 3);
    expect(config.images.pullTimeoutSeconds).toBe(600);
    // A default above the default maximum raises the maximum, so an old setting keeps working.
    expect(loadConfig({ ...base, KILN_CONTAINER_MEMORY_MB: '4096' }).container.memoryMbMax).toBe(
      4096,
    );
    expect(loadConfig({ ...base, KILN_CONTAINER_CPUS: '0.5' }).container.cpus).toBe(0.5);
  });

  it('refuses the host network unless the unsafe flag is set too', () => {
    expect(loadConfig(base).container.unsafeHostNetwork).toBe(false);
    for (const network of ['host', 'HOST', ' host ']) {
      expect(() => loadConfig({ ...base, KILN_CONTAINER_NETWORK: network })).toThrow(
        /KILN_CONTAINER_NETWORK=host .* refused unless KILN_UNSAFE_ALLOW_HOST_NETWORK=1/,
      );
      expect(() =>
        loadConfig({
          ...base,
          KILN_CONTAINER_NETWORK: network,
          KILN_UNSAFE_ALLOW_HOST_NETWORK: '0',
        }),
      ).toThrow(ConfigError);
    }
    for (const flag of ['1', 'true', 'YES']) {
      const config = loadConfig({
        ...base,
        KILN_CONTAINER_NETWORK: 'host',
        KILN_UNSAFE_ALLOW_HOST_NETWORK: flag,
      });
      expect(config.container).toMatchObject({ network: 'host', unsafeHostNetwork: true });
    }
    // The flag alone changes nothing; other networks need no flag.
    expect(loadConfig({ ...base, KILN_UNSAFE_ALLOW_HOST_NETWORK: '1' }).container.network).toBe(
      'none',
    );
    expect(loadConfig({ ...base, KILN_CONTAINER_NETWORK: 'bridge' }).container.network).toBe(
      'bridge',
    );
    expect(() => loadConfig({ ...base, KILN_UNSAFE_ALLOW_HOST_NETWORK: 'maybe' })).toThrow(
      /KILN_UNSAFE_ALLOW_HOST_NETWORK must be 1, true, yes, 0, false or no \(got "maybe"\)/,
    );
  });

  it('refuses bad container limits, naming each variable', () => {
    expect(() => loadConfig({ ...base, KILN_CONTAINER_CPUS: '0' })).toThrow(
      /KILN_CONTAINER_CPUS must be a number from 0.01 to 1024 \(got "0"\)/,
    );
    expect(() => loadConfig({ ...base, KILN_CONTAINER_CPUS_MAX: 'two' })).toThrow(
      /KILN_CONTAINER_CPUS_MAX must be a number/,
    );
    expect(() =>
      loadConfig({ ...base, KILN_CONTAINER_CPUS: '2', KILN_CONTAINER_CPUS_MAX: '1' }),
    ).toThrow(/KILN_CONTAINER_CPUS must not exceed KILN_CONTAINER_CPUS_MAX/);
    expect(() =>
      loadConfig({
        ...base,
        KILN_CONTAINER_MEMORY_MB: '1024',
        KILN_CONTAINER_MEMORY_MB_MAX: '512',
      }),
    ).toThrow(/KILN_CONTAINER_MEMORY_MB must not exceed KILN_CONTAINER_MEMORY_MB_MAX/);
    expect(() => loadConfig({ ...base, KILN_CONTAINER_NOFILE: '10' })).toThrow(
      /KILN_CONTAINER_NOFILE must be an integer from 64/,
    );
    expect(() => loadConfig({ ...base, KILN_PULL_TIMEOUT_SECONDS: '0' })).toThrow(
      /KILN_PULL_TIMEOUT_SECONDS must be an integer from 1/,
    );
    expect(() => loadConfig({ ...base, KILN_IMAGE_MAX_BYTES: '-1' })).toThrow(
      /KILN_IMAGE_MAX_BYTES must be an integer/,
    );
  });

  it('refuses an unknown contract delivery and a relative task files directory', () => {
    expect(() => loadConfig({ ...base, KILN_CONTRACT_DELIVERY: 'copy' })).toThrow(
      /KILN_CONTRACT_DELIVERY must be one of bind, archive/,
    );
    expect(() => loadConfig({ ...base, KILN_TASK_FILES_DIR: 'task-files' })).toThrow(
      /KILN_TASK_FILES_DIR must be an absolute path/,
    );
  });

  it('turns tracing on only with an http(s) OTEL_EXPORTER_OTLP_ENDPOINT', () => {
    expect(loadConfig(base).tracing.endpoint).toBeUndefined();
    expect(
      loadConfig({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }).tracing,
    ).toEqual({ endpoint: 'http://127.0.0.1:4318' });
    expect(() => loadConfig({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'grpc://collector' })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT must start with http: or https:\/\//,
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

  it('reads the per-project quotas: defaults no normal project meets, each one settable', () => {
    expect(loadConfig(base).quotas).toEqual({
      queuedTasks: 1_000_000,
      schedules: 1000,
      webhooks: 20,
      logDrains: 5,
      triggersPerCode: 20,
      logFollowers: 50,
      invokes: 50,
    });
    const config = loadConfig({
      ...base,
      KILN_QUOTA_QUEUED_TASKS: '5',
      KILN_QUOTA_SCHEDULES: '2',
      KILN_QUOTA_WEBHOOKS: '0',
      KILN_QUOTA_LOG_DRAINS: '1',
      KILN_QUOTA_TRIGGERS_PER_CODE: '3',
      KILN_QUOTA_LOG_FOLLOWERS: '4',
      KILN_QUOTA_INVOKES: '6',
    });
    expect(config.quotas).toEqual({
      queuedTasks: 5,
      schedules: 2,
      webhooks: 0,
      logDrains: 1,
      triggersPerCode: 3,
      logFollowers: 4,
      invokes: 6,
    });
    expect(() => loadConfig({ ...base, KILN_QUOTA_SCHEDULES: '-1' })).toThrow(
      'KILN_QUOTA_SCHEDULES must be an integer from 0 to 1000000000 (got "-1")',
    );
  });

  it('reads the retention: 30 days by default, deliveries as long as tasks unless set', () => {
    const defaults = loadConfig(base);
    expect(defaults.retention).toEqual({
      taskDays: 30,
      batch: 1000,
      pauseMs: 100,
      intervalSeconds: 300,
    });
    expect(defaults.webhooks.retentionDays).toBe(30);
    const tasksOnly = loadConfig({ ...base, KILN_TASK_RETENTION_DAYS: '90' });
    expect(tasksOnly.retention.taskDays).toBe(90);
    expect(tasksOnly.webhooks.retentionDays).toBe(90);
    const both = loadConfig({
      ...base,
      KILN_TASK_RETENTION_DAYS: '90',
      KILN_WEBHOOK_RETENTION_DAYS: '7',
    });
    expect(both.webhooks.retentionDays).toBe(7);
    for (const [name, value] of [
      ['KILN_TASK_RETENTION_DAYS', '0'],
      ['KILN_TASK_RETENTION_DAYS', '3651'],
      ['KILN_RETENTION_BATCH', '0'],
      ['KILN_RETENTION_BATCH', '10001'],
      ['KILN_RETENTION_PAUSE_MS', '-1'],
      ['KILN_RETENTION_INTERVAL_SECONDS', '0.5'],
    ]) {
      expect(() => loadConfig({ ...base, [name]: value })).toThrow(
        new RegExp(`${name} must be an integer`),
      );
    }
  });

  it('reads the HTTP limits: body caps, time-outs, rate limits, followers, trusted proxies', () => {
    const config = loadConfig(base);
    expect(config.api).toMatchObject({
      maxBodyBytes: 1024 * 1024,
      headersTimeoutSeconds: 20,
      bodyIdleSeconds: 10,
      bodyTimeoutSeconds: 60,
      uploadTimeoutSeconds: 3600,
      uploadIdleSeconds: 60,
      trustedProxies: [],
      maxFollowers: 1000,
      maxInvokes: 1000,
      invokeOutputMaxBytes: 1024 * 1024,
    });
    expect(config.rateLimits).toEqual({
      tokenPerSecond: 1000,
      tokenBurst: 2000,
      authFailures: 30,
      authFailureWindowSeconds: 60,
      authBlockSeconds: 300,
    });
    expect(
      loadConfig({ ...base, KILN_TRUSTED_PROXIES: 'loopback, 10.0.0.0/8, fd00::1' }).api
        .trustedProxies,
    ).toEqual(['loopback', '10.0.0.0/8', 'fd00::1']);
    expect(() => loadConfig({ ...base, KILN_TRUSTED_PROXIES: '10.0.0.0/8,lb.internal' })).toThrow(
      /KILN_TRUSTED_PROXIES: cannot read "lb.internal"/,
    );
    expect(() => loadConfig({ ...base, KILN_HTTP_BODY_IDLE_SECONDS: '0' })).toThrow(
      /KILN_HTTP_BODY_IDLE_SECONDS must be an integer from 1 to 3600/,
    );
    expect(() =>
      loadConfig({
        ...base,
        KILN_HTTP_HEADERS_TIMEOUT_SECONDS: '120',
        KILN_UPLOAD_TIMEOUT_SECONDS: '60',
      }),
    ).toThrow(/KILN_UPLOAD_TIMEOUT_SECONDS must not be below KILN_HTTP_HEADERS_TIMEOUT_SECONDS/);
  });

  it('reads the pool mode: session by default, the direct URL defaulting to DATABASE_URL', () => {
    const plain = loadConfig(base);
    expect(plain.databasePoolMode).toBe('session');
    expect(plain.databaseDirectUrl).toBe(base.DATABASE_URL);
    const pooled = loadConfig({
      ...base,
      DATABASE_POOL_MODE: 'transaction',
      DATABASE_DIRECT_URL: 'postgres://u:p@10.0.0.5:5432/db',
    });
    expect(pooled.databasePoolMode).toBe('transaction');
    expect(pooled.databaseUrl).toBe(base.DATABASE_URL);
    expect(pooled.databaseDirectUrl).toBe('postgres://u:p@10.0.0.5:5432/db');
  });

  it('reads the pool size: 20 by default, refusing 0', () => {
    expect(loadConfig(base).databasePoolMax).toBe(20);
    expect(loadConfig({ ...base, DATABASE_POOL_MAX: '4' }).databasePoolMax).toBe(4);
    expect(() => loadConfig({ ...base, DATABASE_POOL_MAX: '0' })).toThrow(/DATABASE_POOL_MAX/);
  });

  it('refuses transaction pooling without DATABASE_DIRECT_URL, and an odd mode', () => {
    expect(() => loadConfig({ ...base, DATABASE_POOL_MODE: 'transaction' })).toThrow(
      /DATABASE_DIRECT_URL is required when DATABASE_POOL_MODE=transaction/,
    );
    expect(() => loadConfig({ ...base, DATABASE_POOL_MODE: 'statement' })).toThrow(
      /DATABASE_POOL_MODE must be one of session, transaction/,
    );
    expect(() =>
      loadConfig({ ...base, DATABASE_POOL_MODE: 'transaction', DATABASE_DIRECT_URL: 'mysql://x' }),
    ).toThrow(/DATABASE_DIRECT_URL must start with postgres:/);
  });

  it('reads Redis Sentinel: the sentinels, the primary name and their password', () => {
    expect(loadConfig(base).redisSentinels).toEqual([]);
    const config = loadConfig({
      ...base,
      REDIS_SENTINELS: '10.0.0.1:26379, sentinel-b.example:26380,[::1]:26381',
      REDIS_SENTINEL_NAME: 'kiln',
      REDIS_SENTINEL_PASSWORD: 'hush',
    });
    expect(config.redisSentinels).toEqual([
      { host: '10.0.0.1', port: 26379 },
      { host: 'sentinel-b.example', port: 26380 },
      { host: '::1', port: 26381 },
    ]);
    expect(config.redisSentinelName).toBe('kiln');
    expect(config.redisSentinelPassword).toBe('hush');
  });

  it('refuses sentinels without a name, a name without sentinels and a bad address', () => {
    expect(() => loadConfig({ ...base, REDIS_SENTINELS: '10.0.0.1:26379' })).toThrow(
      /REDIS_SENTINEL_NAME is required with REDIS_SENTINELS/,
    );
    expect(() => loadConfig({ ...base, REDIS_SENTINEL_NAME: 'kiln' })).toThrow(
      /REDIS_SENTINEL_NAME is set but REDIS_SENTINELS is not/,
    );
    expect(() =>
      loadConfig({ ...base, REDIS_SENTINELS: '10.0.0.1, a:99999', REDIS_SENTINEL_NAME: 'kiln' }),
    ).toThrow(/REDIS_SENTINELS: cannot read "10.0.0.1", "a:99999" \(use host:port\)/);
  });

  it('refuses a default timeout above the maximum', () => {
    expect(() =>
      loadConfig({ ...base, KILN_TASK_TIMEOUT_DEFAULT: '7200', KILN_TASK_TIMEOUT_MAX: '3600' }),
    ).toThrow(/KILN_TASK_TIMEOUT_DEFAULT must not exceed/);
  });

  it('reads the platform registry and the credentials key', () => {
    const key = Buffer.alloc(32, 7);
    const config = loadConfig({
      ...base,
      REGISTRY_URL: '127.0.0.1:55000',
      KILN_CREDENTIALS_KEY: key.toString('base64'),
    });
    expect(config.registry).toEqual({
      baseUrl: 'http://127.0.0.1:55000',
      host: '127.0.0.1:55000',
      username: undefined,
      password: undefined,
    });
    expect(config.credentialsKey).toEqual(key);
    expect(loadConfig({ ...base, REGISTRY_URL: 'registry.example.com' }).registry?.baseUrl).toBe(
      'https://registry.example.com',
    );
    expect(
      loadConfig({ ...base, KILN_CREDENTIALS_KEY: key.toString('hex') }).credentialsKey,
    ).toEqual(key);
    expect(loadConfig(base).registry).toBeUndefined();
    expect(loadConfig(base).credentialsOldKeys).toEqual([]);
    const old = Buffer.alloc(32, 9);
    expect(
      loadConfig({
        ...base,
        KILN_CREDENTIALS_OLD_KEYS: ` ${old.toString('hex')}, ${key.toString('base64')} `,
      }).credentialsOldKeys,
    ).toEqual([old, key]);
    expect(loadConfig(base).uploads.maxBytes).toBe(4 * 1024 ** 3);
  });

  it('refuses a short credentials key and a registry URL with a path', () => {
    expect(() => loadConfig({ ...base, KILN_CREDENTIALS_KEY: 'c2hvcnQ=' })).toThrow(
      /KILN_CREDENTIALS_KEY must be 32 bytes/,
    );
    expect(() => loadConfig({ ...base, KILN_CREDENTIALS_OLD_KEYS: 'c2hvcnQ=' })).toThrow(
      /KILN_CREDENTIALS_OLD_KEYS must be 32 bytes/,
    );
    expect(() => loadConfig({ ...base, REGISTRY_URL: 'https://r.example.com/v2' })).toThrow(
      /REGISTRY_URL must be host:port or an http\(s\):\/\/ URL without a path/,
    );
  });

  it('reads the webhook allow-list and retry schedule, naming bad entries', () => {
    const config = loadConfig({
      ...base,
      WEBHOOK_ALLOWED_HOSTS: '127.0.0.1:9000, hooks.internal, 10.0.0.0/8',
      KILN_WEBHOOK_RETRY_SCHEDULE: '1, 2,3',
    });
    expect(config.webhooks.allowedHosts).toHaveLength(3);
    expect(config.webhooks.retrySchedule).toEqual([1, 2, 3]);
    expect(loadConfig(base).webhooks.retrySchedule).toEqual([
      5, 300, 1800, 7200, 18000, 36000, 36000,
    ]);
    expect(loadConfig(base).webhooks.allowedHosts).toEqual([]);
    expect(() => loadConfig({ ...base, WEBHOOK_ALLOWED_HOSTS: '10.0.0.0/99,ok.host' })).toThrow(
      /WEBHOOK_ALLOWED_HOSTS: cannot read "10.0.0.0\/99"/,
    );
    expect(() => loadConfig({ ...base, KILN_WEBHOOK_RETRY_SCHEDULE: '5,soon' })).toThrow(
      /KILN_WEBHOOK_RETRY_SCHEDULE must be/,
    );
  });

  it('reads the image registry allow-list and the shared images, naming bad entries', () => {
    expect(loadConfig(base).images.registries).toEqual([{ host: '*', port: '*' }]);
    expect(loadConfig(base).images.sharedImages).toEqual([]);
    const config = loadConfig({
      ...base,
      KILN_IMAGE_REGISTRIES: 'docker.io, *.example.com:5000, 127.0.0.1:*, [::1]:55000',
      KILN_SHARED_IMAGES: 'kiln-test/*, registry.example.com/base/**',
    });
    expect(config.images.registries).toEqual([
      { host: 'docker.io', port: null },
      { host: '*.example.com', port: 5000 },
      { host: '127.0.0.1', port: '*' },
      { host: '::1', port: 55000 },
    ]);
    expect(config.images.sharedImages).toEqual(['kiln-test/*', 'registry.example.com/base/**']);
    expect(() => loadConfig({ ...base, KILN_IMAGE_REGISTRIES: 'ok.host,bad host:x' })).toThrow(
      /KILN_IMAGE_REGISTRIES: cannot read "bad host:x"/,
    );
    expect(() => loadConfig({ ...base, KILN_SHARED_IMAGES: 'Kiln Test/*' })).toThrow(
      /KILN_SHARED_IMAGES: cannot read "Kiln Test\/\*"/,
    );
  });
  it('reads the metrics settings: on, with project labels, on the API port by default', () => {
    expect(loadConfig(base).metrics).toEqual({
      enabled: true,
      projectLabels: true,
      token: undefined,
      apiPort: 0,
      apiHost: '127.0.0.1',
    });
    expect(loadConfig(base).scheduler.healthPort).toBe(0);
    const set = loadConfig({
      ...base,
      KILN_METRICS: '0',
      KILN_METRICS_PROJECT_LABELS: '0',
      KILN_METRICS_TOKEN: 'a-scrape-token-of-24chars',
      KILN_METRICS_PORT: '9464',
      KILN_SCHEDULER_HEALTH_PORT: '8082',
    });
    expect(set.metrics).toMatchObject({ enabled: false, projectLabels: false, apiPort: 9464 });
    expect(set.metrics.token).toBe('a-scrape-token-of-24chars');
    expect(set.scheduler.healthPort).toBe(8082);
  });

  it('refuses a short scrape token, a metrics port equal to the API port and odd switches', () => {
    expect(() =>
      loadConfig({
        ...base,
        KILN_METRICS: 'yes',
        KILN_METRICS_TOKEN: 'short',
        KILN_METRICS_PORT: '8080',
      }),
    ).toThrow(
      /KILN_METRICS must be one of 0, 1[\s\S]*KILN_METRICS_TOKEN must be at least 16 characters[\s\S]*KILN_METRICS_PORT must differ from KILN_API_PORT/,
    );
  });

  it('reads the stacks and the zip caps, naming bad or doubled stacks', () => {
    expect(loadConfig(base).stacks).toEqual([]);
    expect(loadConfig(base).zips).toMatchObject({
      maxBytes: 256 * 1024 ** 2,
      maxUnpackedBytes: 1024 ** 3,
      maxEntries: 10_000,
    });
    const config = loadConfig({
      ...base,
      KILN_STACKS:
        'node-20=registry.example.com:5000/stacks/node:20, sh=kiln-test/busybox@sha256:' +
        'a'.repeat(64),
    });
    expect(config.stacks).toEqual([
      { name: 'node-20', image: 'registry.example.com:5000/stacks/node:20' },
      { name: 'sh', image: `kiln-test/busybox@sha256:${'a'.repeat(64)}` },
    ]);
    expect(() => loadConfig({ ...base, KILN_STACKS: 'node' })).toThrow(
      /KILN_STACKS: cannot read "node" \(use name=image pairs/,
    );
    expect(() => loadConfig({ ...base, KILN_STACKS: 'a=x,a=y' })).toThrow(
      /KILN_STACKS: stack "a" is named twice/,
    );
  });
});
