import { redisConnection, RedisTarget } from './redis-connection';

const plain: RedisTarget = {
  redisUrl: 'redis://default:s%40cret@10.0.0.9:6380/3',
  redisSentinels: [],
  redisSentinelName: undefined,
  redisSentinelPassword: undefined,
};

describe('redisConnection', () => {
  it('without sentinels: REDIS_URL as it is, with the options given', () => {
    const redis = redisConnection(plain, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      expect(redis.options).toMatchObject({
        host: '10.0.0.9',
        port: 6380,
        db: 3,
        password: 's@cret',
        maxRetriesPerRequest: 1,
      });
      expect(redis.options.sentinels).toBeFalsy();
    } finally {
      redis.disconnect();
    }
  });

  it("with sentinels: asks them for the named primary, REDIS_URL's user, password and database kept", () => {
    const redis = redisConnection(
      {
        ...plain,
        redisSentinels: [
          { host: '10.0.0.21', port: 26379 },
          { host: '10.0.0.22', port: 26379 },
        ],
        redisSentinelName: 'kiln',
        redisSentinelPassword: 'hush',
      },
      { lazyConnect: true, maxRetriesPerRequest: null },
    );
    try {
      expect(redis.options).toMatchObject({
        sentinels: [
          { host: '10.0.0.21', port: 26379 },
          { host: '10.0.0.22', port: 26379 },
        ],
        name: 'kiln',
        sentinelPassword: 'hush',
        username: 'default',
        password: 's@cret',
        db: 3,
        maxRetriesPerRequest: null,
      });
      expect(redis.options.tls).toBeUndefined();
      expect(redis.options.failoverDetector).toBeFalsy();
    } finally {
      redis.disconnect();
    }
  });

  it('with sentinels and rediss: TLS to the primary', () => {
    const redis = redisConnection(
      {
        ...plain,
        redisUrl: 'rediss://10.0.0.9:6380',
        redisSentinels: [{ host: '10.0.0.21', port: 26379 }],
        redisSentinelName: 'kiln',
      },
      { lazyConnect: true },
    );
    try {
      expect(redis.options).toMatchObject({ tls: {}, enableTLSForSentinelMode: true, db: 0 });
    } finally {
      redis.disconnect();
    }
  });
});
