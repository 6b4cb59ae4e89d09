import { readdirSync, readFileSync } from 'node:fs';
import { CHILD_MARKER } from './bot-process.js';

/** A process found under /proc. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  cmdline: string;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined; // gone meanwhile, or not ours to read
  }
}

function parentOf(pid: number): number | undefined {
  const stat = read(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[1]);
}

function isDescendant(pid: number, ancestor: number): boolean {
  let current: number | undefined = pid;
  for (let depth = 0; current && current > 1 && depth < 64; depth++) {
    current = parentOf(current);
    if (current === ancestor) return true;
  }
  return false;
}

/**
 * The live processes this test run started that are still there (vitest's own workers aside): those
 * whose environment carries the run's id (`MDR_TEST_CHILD_OF=<runId>` set by bot-process.ts, or
 * `MDR_TEST_RUN_ID=<runId>` inherited from a worker; both survive re-parenting when a test forgot its
 * child), and those below `rootPid` (the vitest process). Linux only (/proc); elsewhere the list is empty.
 */
export function leftoverProcesses(runId: string, rootPid: number): ProcessInfo[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const markers = [`${CHILD_MARKER}=${runId}`, `MDR_TEST_RUN_ID=${runId}`];
  const found: ProcessInfo[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const stat = read(`/proc/${pid}/stat`);
    // Zombies have already exited; their parent only has not collected them yet.
    if (!stat || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
    const environ = read(`/proc/${pid}/environ`)?.split('\0') ?? [];
    const cmdline = (read(`/proc/${pid}/cmdline`) ?? '').split('\0').join(' ').trim();
    if (/vitest/.test(cmdline)) continue;
    const marked = markers.some((m) => environ.includes(m));
    if (marked || isDescendant(pid, rootPid)) found.push({ pid, ppid: parentOf(pid) ?? 0, cmdline });
  }
  return found;
}
