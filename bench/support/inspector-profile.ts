import { writeFileSync } from 'node:fs';
import WebSocket from 'ws';

/**
 * A CPU profile of one phase of a child started with `--inspect=127.0.0.1:<port>`: the bench asks the
 * child's inspector (Chrome DevTools Protocol) to start the profiler before the phase and to stop it
 * after, so the profile holds that phase alone (`--cpu-prof` covers the whole process).
 */
export class PhaseProfiler {
  private socket: WebSocket | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();

  constructor(private readonly port: number) {}

  /** Connects to the child's inspector and starts the profiler. */
  async start(): Promise<void> {
    const targets = (await (await fetch(`http://127.0.0.1:${this.port}/json/list`)).json()) as {
      webSocketDebuggerUrl: string;
    }[];
    const url = targets[0]?.webSocketDebuggerUrl;
    if (!url) throw new Error('the bot has no inspector target');
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    socket.on('message', (raw) => {
      const message = JSON.parse(String(raw)) as {
        id?: number;
        result?: unknown;
        error?: { message: string };
      };
      const waiting = message.id === undefined ? undefined : this.pending.get(message.id);
      if (!waiting || message.id === undefined) return;
      this.pending.delete(message.id);
      if (message.error) waiting.reject(new Error(message.error.message));
      else waiting.resolve(message.result);
    });
    this.socket = socket;
    await this.call('Profiler.enable');
    await this.call('Profiler.start');
    await this.call('HeapProfiler.startSampling', {
      samplingInterval: 32_768,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  }

  /**
   * Stops the profiler, writes the CPU profile to `file` (and the allocations sampled meanwhile, still
   * live or not, beside it as `.heapprofile`) and disconnects.
   */
  async stop(file: string): Promise<void> {
    const { profile } = (await this.call('Profiler.stop')) as { profile: unknown };
    writeFileSync(file, JSON.stringify(profile));
    const heap = (await this.call('HeapProfiler.stopSampling')) as { profile: unknown };
    writeFileSync(file.replace(/\.cpuprofile$/, '.heapprofile'), JSON.stringify(heap.profile));
    await this.call('Profiler.disable');
    this.socket?.close();
    this.socket = undefined;
  }

  private call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const socket = this.socket;
    if (!socket) return Promise.reject(new Error('not connected'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      socket.send(JSON.stringify({ id, method, params }));
    });
  }
}
