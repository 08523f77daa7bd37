/**
 * The suite's Redis: database KILN_TEST_REDIS_DB (default 0) of REDIS_URL, so that a second run
 * on the machine (which sets another number) survives this run's FLUSHDB test.
 */
export function testRedisUrl(): string {
  const url = new URL(process.env.REDIS_URL!);
  url.pathname = `/${Number(process.env.KILN_TEST_REDIS_DB ?? 0)}`;
  return url.toString();
}
