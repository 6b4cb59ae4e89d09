import { join } from 'node:path';
import { startChild } from './children.js';
import type { Observations } from './fakes.js';
import { startSink } from './sink.js';

/** What bench/floor-calls.ts prints: CPU ms per call of its own process. */
export interface CallsFloor {
  bodyBytes: number;
  calls: number;
  concurrency: number;
  httpPostCpuMs: number;
  httpsPostCpuMs: number;
  redisCommandCpuMs: number;
}

/**
 * Every call the bot made to the fakes so far: Slack Web API calls and `response_url` posts, Teams posts
 * and updates, Defender POSTs and GETs, Graph calls. Token and OpenID requests (a few per run) left out.
 */
export function outboundCalls(seen: Observations): number {
  let total = seen.slackResponseUrlPosts + seen.teamsUpdates + seen.graphCalls;
  for (const [method, n] of seen.slackCalls) if (method !== 'auth.test') total += n;
  for (const n of seen.teamsPostsByIncident.values()) total += n;
  const d = seen.defender;
  return total + d.posts.length + d.singleGets + d.listGets;
}

/** Run bench/floor-calls.ts against a sink in this process; its CPU per call, or null if it failed. */
export async function measureCallsFloor(
  tls: { key: string; cert: string },
  redisUrl: string,
  prefix: string,
  env: Record<string, string>,
  root = process.cwd(),
): Promise<CallsFloor | null> {
  const sink = await startSink(tls);
  try {
    const child = startChild(
      'calls floor',
      process.execPath,
      ['--import', 'tsx', join(root, 'bench/floor-calls.ts')],
      {
        ...env,
        FLOOR_HTTP_URL: sink.httpUrl,
        FLOOR_HTTPS_URL: sink.httpsUrl,
        FLOOR_REDIS_URL: redisUrl,
        FLOOR_PREFIX: prefix,
      },
    );
    const code = await new Promise<number | null>((resolve) => {
      if (child.process.exitCode !== null) resolve(child.process.exitCode);
      else child.process.once('exit', (c) => resolve(c));
    });
    await child.stop();
    const line = child
      .tail()
      .split('\n')
      .reverse()
      .find((l) => l.startsWith('{'));
    if (code !== 0 || !line) {
      console.error(`calls floor failed (exit ${code}):\n${child.tail()}`);
      return null;
    }
    return JSON.parse(line) as CallsFloor;
  } finally {
    await sink.close();
  }
}

interface Load {
  outboundCalls: number | null;
  redisCommands: number | null;
}

interface FloorInputs {
  callsFloor: CallsFloor | null;
  boltCpuMsPerClick: { c1: number | null; c50: number | null };
  botbuilderCpuMsPerInvoke: number | null;
  perIngest: Load;
  perApproval: { c1: Load; c50: Load };
}

const round = (v: number) => Math.round(v * 100) / 100;

/**
 * The least CPU the bot's work could cost on this machine, from floors measured in the same run: the
 * bare Bolt app's CPU per signed request (an inbound request verified and answered), plus the outbound
 * calls the bot made per unit of work at the calls floor's cost (mean of HTTP and HTTPS), plus the Redis
 * commands counted per unit at the floor's cost per command. Commands run inside Lua scripts are in the
 * count but cost the bot nothing, so the Redis part is an upper bound of its floor; `withoutRedis` is
 * the rest alone.
 */
export function floorsOf(inputs: FloorInputs) {
  const { callsFloor, boltCpuMsPerClick } = inputs;
  if (!callsFloor) return { ...inputs, perIngestMs: null, perApprovalMs: null };
  const call = (callsFloor.httpPostCpuMs + callsFloor.httpsPostCpuMs) / 2;
  const floor = (inbound: number | null, load: Load) => {
    const outbound = (load.outboundCalls ?? 0) * call;
    const redis = (load.redisCommands ?? 0) * callsFloor.redisCommandCpuMs;
    const withoutRedis = (inbound ?? 0) + outbound;
    return {
      inbound: inbound === null ? null : round(inbound),
      outbound: round(outbound),
      redis: round(redis),
      withoutRedis: round(withoutRedis),
      total: round(withoutRedis + redis),
    };
  };
  return {
    ...inputs,
    perIngestMs: floor(boltCpuMsPerClick.c50, inputs.perIngest),
    perApprovalMs: {
      c1: floor(boltCpuMsPerClick.c1, inputs.perApproval.c1),
      c50: floor(boltCpuMsPerClick.c50, inputs.perApproval.c50),
    },
  };
}

/** The floors row of the table: per ingest / per approval c=1 / c=50, with the calls floor's unit costs. */
export function floorText(floors: ReturnType<typeof floorsOf>): string {
  const { callsFloor, perIngestMs, perApprovalMs } = floors;
  if (!callsFloor || !perIngestMs || !perApprovalMs) return 'n/a (the calls floor did not run)';
  const part = (f: { withoutRedis: number; total: number }) => `${f.withoutRedis}–${f.total} ms`;
  return `${part(perIngestMs)} / ${part(perApprovalMs.c1)} / ${part(perApprovalMs.c50)} (without Redis – with every command counted; one HTTP call ${callsFloor.httpPostCpuMs} ms, HTTPS ${callsFloor.httpsPostCpuMs} ms, a Redis command ${callsFloor.redisCommandCpuMs} ms; bare Bolt request ${floors.boltCpuMsPerClick.c1} / ${floors.boltCpuMsPerClick.c50} ms)`;
}
