import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Self time of one function or file, in ms and as a share of the profile. */
export interface SelfTime {
  name: string;
  ms: number;
  share: number;
}

/** Busy self time by function and by file (or package) of the `.cpuprofile` files in `dir`. */
export function summariseCpuProfiles(
  dir: string,
  root: string,
  top = 15,
): { totalMs: number; functions: SelfTime[]; files: SelfTime[]; inclusive: SelfTime[] } {
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let totalMs = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    const parents = new Map<number, number>();
    for (const n of profile.nodes) for (const c of n.children ?? []) parents.set(c, n.id);
    // The groups (package, or file of the bot) on each node's stack, computed once per node.
    const stacks = new Map<number, Set<string>>();
    const stackOf = (id: number): Set<string> => {
      const known = stacks.get(id);
      if (known) return known;
      const node = nodes.get(id);
      const parent = parents.get(id);
      const set = new Set(parent === undefined ? [] : stackOf(parent));
      const where = node ? place(node.callFrame.url, root) : '';
      if (where) set.add(group(where));
      stacks.set(id, set);
      return set;
    };
    profile.samples.forEach((id, i) => {
      const ms = (profile.timeDeltas[i] ?? 0) / 1000;
      const node = nodes.get(id);
      // Idle time is not the bot's work: shares are of the time the process was busy.
      if (!node || node.callFrame.functionName === '(idle)') return;
      totalMs += ms;
      const where = place(node.callFrame.url, root);
      const fn = node.callFrame.functionName || '(anonymous)';
      const key = where ? `${fn} ${where}:${node.callFrame.lineNumber + 1}` : fn;
      byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
      const fileKey = where ? group(where) : fn;
      byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + ms);
      for (const g of stackOf(id)) inclusive.set(g, (inclusive.get(g) ?? 0) + ms);
    });
  }
  const rank = (map: Map<string, number>, most = top) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, most)
      .map(([name, ms]) => ({
        name,
        ms: Math.round(ms),
        share: totalMs ? Math.round((ms / totalMs) * 1000) / 10 : 0,
      }));
  return {
    totalMs: Math.round(totalMs),
    functions: rank(byFunction),
    files: rank(byFile),
    // Time with the package or file anywhere on the stack (what it and everything it calls cost).
    inclusive: rank(inclusive, top * 2),
  };
}

function place(url: string, root: string): string {
  if (!url) return '';
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  return path.startsWith('/') ? relative(root, path) : path;
}

/** A dependency's files are grouped by package; the bot's own files stay apart. */
function group(where: string): string {
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(where);
  return match ? `${match[1]} (package)` : where;
}
