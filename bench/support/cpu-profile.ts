import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
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
): { totalMs: number; functions: SelfTime[]; files: SelfTime[] } {
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let totalMs = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
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
    });
  }
  const rank = (map: Map<string, number>) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, ms]) => ({
        name,
        ms: Math.round(ms),
        share: totalMs ? Math.round((ms / totalMs) * 1000) / 10 : 0,
      }));
  return { totalMs: Math.round(totalMs), functions: rank(byFunction), files: rank(byFile) };
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
