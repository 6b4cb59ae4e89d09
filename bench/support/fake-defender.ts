import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { matches, parseFilter } from './defender-filter.js';
import { RateWindow } from './rate-window.js';

/**
 * Defender for Endpoint's machine-action API as the bench needs it: machine-action POSTs answer 201 with
 * a MachineAction that is `Pending`, `InProgress` from a third of the configured delay and `Succeeded` at
 * the delay (the real service takes minutes); a second POST of a type whose action is still open on the
 * device is refused with 400 "Action is already in progress", as Defender does. `GET
 * /api/machineactions/{id}` and the list with `$filter` (`id in (...)`, `machineId eq ... and type eq ...
 * and status eq ...`) read them. With `limits`, each API takes 100 calls a minute and 1,500 an hour and
 * answers 429 with `Retry-After` beyond that.
 */

const CONTEXT = 'https://api.securitycenter.microsoft.com/api/$metadata';

/** Machine-action paths (`POST /api/machines/{id}/{path}`) and the MachineAction type each creates. */
const ACTION_TYPES: Record<string, string> = {
  isolate: 'Isolate',
  unisolate: 'Unisolate',
  runantivirusscan: 'RunAntiVirusScan',
  stopandquarantinefile: 'StopAndQuarantineFile',
  restrictcodeexecution: 'RestrictCodeExecution',
  unrestrictcodeexecution: 'UnrestrictCodeExecution',
  collectinvestigationpackage: 'CollectInvestigationPackage',
  offboard: 'Offboard',
};

const FINAL = new Set(['Succeeded', 'Failed', 'TimeOut', 'Cancelled']);

/** One machine-action POST as the fake received it. */
export interface DefenderPost {
  at: number;
  machineId: string;
  type: string;
  /** The HTTP status the fake answered (201, 400 already in progress, 429). */
  status: number;
  /** The accepted action's id (201 only). */
  actionId?: string;
  /** A run incident id named in the body (the comment), if any. */
  incidentId: string | null;
}

/** What the fake Defender saw; times are `performance.now()` of the bench process. */
export class DefenderObservations {
  posts: DefenderPost[] = [];
  /** POSTs per `machineId/type` not refused for the rate limit: more than one is a duplicate submission. */
  postsByMachineType = new Map<string, number>();
  /** First time a GET (single or list) returned each action in a final status. */
  finalSeen = new Map<string, number>();
  inFlight = 0;
  maxInFlight = 0;
  /** `GET /api/machineactions/{id}`. */
  singleGets = 0;
  /** `GET /api/machineactions?$filter=...` and the action ids named by `id in (...)` in them. */
  listGets = 0;
  listIdsAsked = 0;
  listLargestBatch = 0;
  /** Answers 429 by API (only with limits on). */
  throttled = new Map<string, number>();
  refusedFilters = 0;

  /** `{machine/type: count}` of the device+type pairs POSTed more than once. */
  duplicates(): { pairs: number; extraPosts: number } {
    let pairs = 0;
    let extraPosts = 0;
    for (const count of this.postsByMachineType.values()) {
      if (count > 1) {
        pairs += 1;
        extraPosts += count - 1;
      }
    }
    return { pairs, extraPosts };
  }
}

type Json = (res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>) => void;

export interface FakeDefenderOptions {
  /** An action is final this long after it was accepted. */
  delayMs: number;
  /** Enforce Defender's documented limits (429 with Retry-After). */
  limits: boolean;
  /** The app's client id: `requestor` of app-made actions. */
  requestor: string;
  incidentIn(text: string): string | null;
}

export function fakeDefender(options: FakeDefenderOptions, json: Json) {
  const seen = new DefenderObservations();
  const actions = new Map<string, Record<string, unknown>>();
  const open = new Map<string, string>(); // machineId/type → open action id
  const windows = new Map<string, RateWindow>();
  const startedAt = new Map<string, number>(); // action id → epoch ms accepted

  const throttle = (api: string, res: ServerResponse): boolean => {
    if (!options.limits) return false;
    let window = windows.get(api);
    if (!window) {
      window = new RateWindow();
      windows.set(api, window);
    }
    const wait = window.take(Date.now());
    if (wait === 0) return false;
    seen.throttled.set(api, (seen.throttled.get(api) ?? 0) + 1);
    json(
      res,
      429,
      {
        error: {
          code: 'TooManyRequests',
          message: 'Too many requests. Please retry after the time specified in the Retry-After header.',
          target: randomUUID(),
        },
      },
      { 'retry-after': String(wait) },
    );
    return true;
  };

  /** The action as Defender would show it now (status from its age). */
  const current = (record: Record<string, unknown>): Record<string, unknown> => {
    const id = record.id as string;
    const age = Date.now() - (startedAt.get(id) ?? Date.now());
    const status =
      age >= options.delayMs ? 'Succeeded' : age >= options.delayMs / 3 ? 'InProgress' : 'Pending';
    if (status !== record.status) {
      record.status = status;
      record.lastUpdateDateTimeUtc = new Date().toISOString();
    }
    return record;
  };
  /** Record that the bot was shown `record` (final ones: when it could first know). */
  const shown = (record: Record<string, unknown>) => {
    const id = record.id as string;
    if (FINAL.has(record.status as string) && !seen.finalSeen.has(id))
      seen.finalSeen.set(id, performance.now());
    return record;
  };

  const machine = (id: string) => ({
    id,
    computerDnsName: `ws-${id.slice(0, 8)}.bench.contoso.com`,
    rbacGroupId: 7,
    rbacGroupName: 'Workstations',
    machineTags: [],
    osPlatform: 'Windows11',
    healthStatus: 'Active',
  });

  const submit = (machineId: string, path: string, body: string, res: ServerResponse) => {
    const now = performance.now();
    const type = ACTION_TYPES[path.toLowerCase()];
    if (!type) return json(res, 404, { error: { code: 'NotFound', message: `no action ${path}` } });
    const key = `${machineId}/${type}`;
    const post: DefenderPost = { at: now, machineId, type, status: 0, incidentId: options.incidentIn(body) };
    seen.posts.push(post);
    if (throttle('machine actions POST', res)) {
      post.status = 429;
      return;
    }
    // Refused for the rate limit, a request was not submitted; any other second POST is a duplicate.
    seen.postsByMachineType.set(key, (seen.postsByMachineType.get(key) ?? 0) + 1);
    const openId = open.get(key);
    if (openId && !FINAL.has(current(actions.get(openId)!).status as string)) {
      post.status = 400;
      return json(res, 400, {
        error: {
          code: 'ActiveRequestAlreadyExists',
          message: 'Action is already in progress',
          target: randomUUID(),
        },
      });
    }
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(body) as Record<string, unknown>;
    } catch {
      // a body Defender would refuse; the fake keeps going with an empty comment
    }
    const id = randomUUID();
    const created = new Date().toISOString();
    const sha1 = typeof parsed.Sha1 === 'string' ? parsed.Sha1 : undefined;
    const record: Record<string, unknown> = {
      id,
      type,
      title: null,
      scope:
        typeof parsed.IsolationType === 'string' ? parsed.IsolationType : type === 'Isolate' ? 'Full' : null,
      requestor: options.requestor,
      requestorComment: typeof parsed.Comment === 'string' ? parsed.Comment : '',
      requestSource: 'PublicApi',
      externalId: null,
      status: 'Pending',
      machineId,
      computerDnsName: machine(machineId).computerDnsName,
      creationDateTimeUtc: created,
      lastUpdateDateTimeUtc: created,
      cancellationRequestor: null,
      cancellationComment: null,
      cancellationDateTimeUtc: null,
      errorHResult: 0,
      commands: [],
      relatedFileInfo: sha1 ? { fileIdentifier: sha1, fileIdentifierType: 'Sha1' } : null,
      troubleshootInfo: null,
    };
    actions.set(id, record);
    startedAt.set(id, Date.now());
    open.set(key, id);
    post.status = 201;
    post.actionId = id;
    seen.inFlight += 1;
    seen.maxInFlight = Math.max(seen.maxInFlight, seen.inFlight);
    setTimeout(() => {
      seen.inFlight -= 1;
    }, options.delayMs).unref();
    json(res, 201, { '@odata.context': `${CONTEXT}#MachineActions/$entity`, ...record });
  };

  /** Answer a request under `/api/`, or return false when it is not one the fake knows. */
  const handle = (req: IncomingMessage, body: string, res: ServerResponse): boolean => {
    const url = new URL(req.url ?? '/', 'http://x');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (parts[0] !== 'api') return false;
    if (req.method === 'POST' && parts[1] === 'machines' && parts.length === 4) {
      submit(parts[2]!, parts[3]!, body, res);
      return true;
    }
    if (req.method === 'GET' && parts[1] === 'machineactions' && parts.length <= 3) {
      if (throttle('machine actions GET', res)) return true;
      if (parts[2]) {
        seen.singleGets += 1;
        const record = actions.get(parts[2]);
        if (!record) json(res, 404, { error: { code: 'NotFound', message: 'Machine action was not found' } });
        else
          json(res, 200, {
            '@odata.context': `${CONTEXT}#MachineActions/$entity`,
            ...shown(current(record)),
          });
        return true;
      }
      seen.listGets += 1;
      const filter = parseFilter(url.searchParams.get('$filter'));
      if (!filter.ok) {
        seen.refusedFilters += 1;
        json(res, 400, { error: { code: 'BadRequest', message: `Invalid filter: ${filter.problem}` } });
        return true;
      }
      const ids = filter.clauses.find((c) => c.field === 'id' && c.values.length > 0);
      if (ids) {
        seen.listIdsAsked += ids.values.length;
        seen.listLargestBatch = Math.max(seen.listLargestBatch, ids.values.length);
      }
      // Narrow by id first when the filter names ids (the batched follow-up); else scan them all.
      const candidates = ids
        ? ids.values.flatMap((id) => {
            const r = actions.get(id) ?? actions.get(id.toLowerCase());
            return r ? [r] : [];
          })
        : [...actions.values()];
      const value = candidates
        .map(current)
        .filter((r) => matches(r, filter.clauses))
        .map(shown);
      json(res, 200, { '@odata.context': `${CONTEXT}#MachineActions`, value });
      return true;
    }
    if (req.method === 'GET' && parts[1] === 'machines') {
      if (throttle('machines GET', res)) return true;
      json(res, 200, parts[2] ? machine(parts[2]) : { value: [machine('0'.repeat(40))] });
      return true;
    }
    return false;
  };

  return { seen, handle };
}
