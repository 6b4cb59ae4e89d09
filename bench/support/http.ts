import { Agent, request } from 'node:http';

/** A keep-alive client for one origin with at most `sockets` connections (one per sender). */
export function keepAliveAgent(sockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });
}

/** One HTTP exchange: status, body text and the time from sending to the end of the answer (ms). */
export interface Exchange {
  status: number;
  body: string;
  ms: number;
  /** `performance.now()` when the request was started. */
  startedAt: number;
}

/** Send one request and read the whole answer; network errors are status 0. */
export function send(
  agent: Agent,
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Exchange> {
  const startedAt = performance.now();
  return new Promise((resolve) => {
    const body = options.body === undefined ? undefined : Buffer.from(options.body);
    const req = request(
      url,
      {
        agent,
        method: options.method ?? (body ? 'POST' : 'GET'),
        headers: { ...options.headers, ...(body ? { 'content-length': String(body.length) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            ms: performance.now() - startedAt,
            startedAt,
          }),
        );
        res.on('error', () => resolve({ status: 0, body: '', ms: performance.now() - startedAt, startedAt }));
      },
    );
    req.on('error', (error) =>
      resolve({ status: 0, body: error.message, ms: performance.now() - startedAt, startedAt }),
    );
    req.end(body);
  });
}

/** Run `work` for every item with `concurrency` senders, each sending its next item when answered. */
export async function runSenders<T, R>(
  items: T[],
  concurrency: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const sender = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, sender));
  return results;
}
