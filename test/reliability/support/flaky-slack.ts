import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** How often the card calls (`chat.postMessage`, `chat.update`) are refused, each a share of all calls. */
export interface SlackFaults {
  /** Answered 429 `ratelimited` with `Retry-After: 1`. */
  rateLimited: number;
  /** Answered 500. */
  serverError: number;
  /** Seed of the fault sequence, so a run can be repeated. */
  seed: number;
}

/** What Slack did with the card calls, by incident. */
export interface SlackCardLedger {
  calls: number;
  rateLimited: number;
  serverErrors: number;
  /** `chat.postMessage` calls that Slack accepted (ok: true), by incident. */
  posted: Map<string, number>;
  /** The text of the card as first posted, decoded. */
  firstCard: Map<string, string>;
  /** The text of the last card Slack accepted for the incident (posted or updated), decoded. */
  lastCard: Map<string, string>;
}

export interface FlakySlack {
  /** Base URL to give the bot (append `/api/`). */
  url: string;
  ledger: SlackCardLedger;
  /**
   * From now on, hold Slack's answers to `chat.postMessage` (the card is posted, the bot does not know
   * yet) until `release()`.
   */
  hold(): void;
  /** Answers held so far and not yet released. */
  readonly held: number;
  /** Send every held answer, and stop holding. */
  release(): void;
  close(): Promise<void>;
}

/** A small seeded generator (mulberry32): the same seed gives the same faults in the same order. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A Web API body as text: JSON as it is, a form body with its fields decoded. */
function decoded(body: string, contentType: string | undefined): string {
  if (contentType?.includes('json')) return body;
  return [...new URLSearchParams(body).entries()].map(([k, v]) => `${k}=${v}`).join('\n');
}

const CARD_CALLS = new Set(['chat.postMessage', 'chat.update']);

/**
 * Slack as it behaves in a bad hour: in front of the loopback fake of Slack (`target`), card calls are
 * refused with 429 (Retry-After: 1) or 500 at the given rates; every other request, and every card call
 * that is let through, is passed to the fake unchanged. Records which card calls Slack accepted.
 */
export async function startFlakySlack(
  target: string,
  faults: SlackFaults,
  incidentPattern: RegExp,
): Promise<FlakySlack> {
  const next = random(faults.seed);
  const ledger: SlackCardLedger = {
    calls: 0,
    rateLimited: 0,
    serverErrors: 0,
    posted: new Map(),
    firstCard: new Map(),
    lastCard: new Map(),
  };
  let holding = false;
  const waiting: (() => void)[] = [];
  const release = () => {
    holding = false;
    for (const resume of waiting.splice(0)) resume();
  };
  const reply = (res: ServerResponse, status: number, headers: Record<string, string>, body: string) => {
    res.writeHead(status, { ...headers, 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
  };
  const handle = async (req: IncomingMessage, body: string, res: ServerResponse) => {
    const path = req.url ?? '/';
    const method = path.replace(/^\/api\//, '').split('?')[0] ?? '';
    const contentType = req.headers['content-type'];
    if (CARD_CALLS.has(method)) {
      ledger.calls += 1;
      const roll = next();
      if (roll < faults.rateLimited) {
        ledger.rateLimited += 1;
        reply(
          res,
          429,
          { 'content-type': 'application/json', 'retry-after': '1' },
          JSON.stringify({ ok: false, error: 'ratelimited' }),
        );
        return;
      }
      if (roll < faults.rateLimited + faults.serverError) {
        ledger.serverErrors += 1;
        reply(res, 500, { 'content-type': 'text/plain' }, 'Internal Server Error');
        return;
      }
    }
    const forwarded = await fetch(`${target}${path}`, {
      method: req.method ?? 'POST',
      headers: {
        ...(contentType ? { 'content-type': contentType } : {}),
        ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      },
      ...(req.method === 'GET' || req.method === 'HEAD' ? {} : { body }),
    });
    const answer = await forwarded.text();
    if (CARD_CALLS.has(method) && forwarded.status === 200) {
      const incidentId = incidentPattern.exec(body)?.[0];
      let ok = false;
      try {
        ok = JSON.parse(answer).ok === true;
      } catch {
        ok = false;
      }
      if (incidentId && ok) {
        const card = decoded(body, contentType);
        if (method === 'chat.postMessage') {
          ledger.posted.set(incidentId, (ledger.posted.get(incidentId) ?? 0) + 1);
          if (!ledger.firstCard.has(incidentId)) ledger.firstCard.set(incidentId, card);
        }
        ledger.lastCard.set(incidentId, card);
      }
      if (holding && method === 'chat.postMessage') await new Promise<void>((resume) => waiting.push(resume));
    }
    reply(
      res,
      forwarded.status,
      { 'content-type': forwarded.headers.get('content-type') ?? 'application/json' },
      answer,
    );
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      handle(req, Buffer.concat(chunks).toString('utf8'), res).catch((error: unknown) => {
        reply(res, 502, { 'content-type': 'text/plain' }, `flaky Slack: ${(error as Error).message}`);
      });
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ledger,
    hold: () => {
      holding = true;
    },
    get held() {
      return waiting.length;
    },
    release,
    async close() {
      release();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
