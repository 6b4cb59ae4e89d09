import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';

/** A child process started in its own process group, so that stopping it stops everything it started. */
export interface Child {
  name: string;
  pid: number;
  process: ChildProcess;
  /** The child's last lines of stderr/stdout, to explain a failure. */
  tail(): string;
  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves once the child has exited. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<Child>();

/** Start `command` detached (own process group) with exactly `env`. */
export function startChild(name: string, command: string, args: string[], env: NodeJS.ProcessEnv): Child {
  const proc = spawn(command, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  if (!proc.pid) throw new Error(`${name}: could not start ${command}`);
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(line);
    if (lines.length > 40) lines.splice(0, lines.length - 40);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const child: Child = {
    name,
    pid: proc.pid,
    process: proc,
    tail: () => lines.join('\n'),
    async stop(graceMs = 5_000) {
      live.delete(child);
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      signalGroup(proc.pid!, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(proc.pid!, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      // Anything the child itself started in its group goes too.
      signalGroup(proc.pid!, 'SIGKILL');
    },
  };
  live.add(child);
  return child;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is already gone
  }
}

/** Stop every child still running (on the way out, also after a failure). */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...live].map((c) => c.stop()));
}

/** Kill every child group at once, synchronously: for `exit` and signal handlers. */
export function killAllChildrenNow(): void {
  for (const child of live) signalGroup(child.pid, 'SIGKILL');
  live.clear();
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** CPU time (user + system) the process has used, in ms: what `process.cpuUsage()` reports inside it. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / TICKS_PER_SECOND;
}

/** Resident memory now and its peak (VmHWM), in MB. */
export function memoryMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** Wait until `GET url` answers (any status), or fail after `timeoutMs` with the child's output. */
export async function waitForHttp(url: string, child: Child, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.process.exitCode !== null) {
      throw new Error(`${child.name} exited with ${child.process.exitCode}:\n${child.tail()}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const req = request(url, { method: 'GET', timeout: 1_000 }, (res) => {
        res.resume();
        resolve(true);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => {
        req.destroy();
        resolve(false);
      });
      req.end();
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${child.name} did not answer ${url} within ${timeoutMs} ms:\n${child.tail()}`);
}
