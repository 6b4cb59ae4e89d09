/**
 * The calls floor of `npm run bench`: what the bot's outbound work costs at the least on this machine, in
 * a process that does nothing else and does it the cheapest way Node.js offers.
 * - HTTP: keep-alive `node:http` POSTs of a card-sized JSON body (a Slack card call);
 * - HTTPS: keep-alive `node:https` POSTs of a card-sized JSON body (a Bot Connector call);
 * - Redis: ioredis with auto-pipelining, the store's mix of reads and writes (an action read, an
 *   incident's actions read, a small GET, a ZADD), values the size of the bot's.
 * Each kind runs `FLOOR_N` calls at concurrency `FLOOR_CONCURRENCY` after a warm-up; CPU is
 * `process.cpuUsage()` of this process around them. Prints one JSON object: CPU ms per call.
 * Environment: FLOOR_HTTP_URL, FLOOR_HTTPS_URL (the bench's sink), FLOOR_REDIS_URL, FLOOR_PREFIX (keys
 * under it, deleted after), FLOOR_BODY_BYTES (6000), FLOOR_N (2000), FLOOR_CONCURRENCY (20);
 * NODE_EXTRA_CA_CERTS for the sink's certificate.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Redis } from 'ioredis';

const N = Number(process.env.FLOOR_N ?? 2000);
const CONCURRENCY = Number(process.env.FLOOR_CONCURRENCY ?? 20);
const BODY_BYTES = Number(process.env.FLOOR_BODY_BYTES ?? 6000);
const PREFIX = process.env.FLOOR_PREFIX ?? 'bench:floor:';

const httpAgent = new HttpAgent({ keepAlive: true });
const httpsAgent = new HttpsAgent({ keepAlive: true });

function post(url: string, body: string, contentType: string): Promise<void> {
  const target = new URL(url);
  const secure = target.protocol === 'https:';
  const send = secure ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      {
        method: 'POST',
        agent: secure ? httpsAgent : httpAgent,
        headers: {
          authorization: 'Bearer floor-token',
          'content-type': contentType,
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          JSON.parse(Buffer.concat(chunks).toString('utf8'));
          if (res.statusCode === 200) resolve();
          else reject(new Error(`sink answered ${res.statusCode}`));
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Run `call(i)` for i < n at `concurrency`; CPU ms per call of this process. */
async function cpuPerCall(n: number, call: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (next < n) await call(next++);
  };
  const warm = Math.min(200, n);
  for (let i = 0; i < warm; i++) await call(i);
  const before = process.cpuUsage();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const used = process.cpuUsage(before);
  return Math.round(((used.user + used.system) / 1000 / n) * 1000) / 1000;
}

const card = JSON.stringify({
  channel: 'C0BENCH',
  ts: '1.000001',
  text: 'card',
  blocks: [{ type: 'section', text: { type: 'mrkdwn', text: 'x'.repeat(BODY_BYTES) } }],
});
const activity = JSON.stringify({
  type: 'message',
  attachments: [
    { contentType: 'application/vnd.microsoft.card.adaptive', content: { text: 'x'.repeat(BODY_BYTES) } },
  ],
});

const redis = new Redis(process.env.FLOOR_REDIS_URL ?? 'redis://127.0.0.1:6379', {
  enableAutoPipelining: true,
});
const action = JSON.stringify({ id: 'act-1', state: 'executing', note: 'x'.repeat(1400) });
const actionsKey = `${PREFIX}actions`;
await redis.hset(actionsKey, Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`act-${i}`, action])));
await redis.set(`${PREFIX}meta`, '1'.repeat(900));
const redisCall = (i: number): Promise<unknown> => {
  switch (i % 4) {
    case 0:
      return redis.hget(actionsKey, 'act-1');
    case 1:
      return redis.hgetall(actionsKey);
    case 2:
      return redis.get(`${PREFIX}meta`);
    default:
      return redis.zadd(`${PREFIX}index`, i, `member-${i % 500}`);
  }
};

const result = {
  bodyBytes: BODY_BYTES,
  calls: N,
  concurrency: CONCURRENCY,
  httpPostCpuMs: await cpuPerCall(N, () =>
    post(`${process.env.FLOOR_HTTP_URL}/api/chat.update`, card, 'application/json; charset=utf-8'),
  ),
  httpsPostCpuMs: await cpuPerCall(N, () =>
    post(`${process.env.FLOOR_HTTPS_URL}/v3/conversations/c/activities`, activity, 'application/json'),
  ),
  redisCommandCpuMs: await cpuPerCall(N * 4, redisCall),
};
await redis.del(actionsKey, `${PREFIX}meta`, `${PREFIX}index`);
redis.disconnect();
httpAgent.destroy();
httpsAgent.destroy();
console.log(JSON.stringify(result));
