/**
 * `npm run bench`: measures the Redis round trips of one approval on the Redis at REDIS_URL (default
 * redis://127.0.0.1:6379), writing only under a `bench:<random>:` prefix that is deleted after.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { deleteKeysWithPrefix } from '../test/support/redis-keys.js';
import { measureApprovalRoundTrips } from './approval-round-trips.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `bench:${randomBytes(4).toString('hex')}:`;
try {
  const result = await measureApprovalRoundTrips(url, prefix);
  console.log(JSON.stringify(result, null, 2));
} finally {
  const admin = new Redis(url);
  await deleteKeysWithPrefix(admin, prefix);
  admin.disconnect();
}
