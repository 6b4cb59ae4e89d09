// Loaded into the bot with `node --import` when the bench runs with BENCH_MEMORY_LOG=1: appends one JSON
// line every BENCH_MEMORY_LOG_MS (500 ms) to BENCH_MEMORY_LOG_FILE with process.memoryUsage() and the V8
// heap spaces, in MB, to see what the resident memory is made of. With BENCH_HEAP_SNAPSHOT_MB set, writes
// one heap snapshot (into the log file's folder) the first time the RSS passes that many MB.
import { appendFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics, writeHeapSnapshot } from 'node:v8';

const file = process.env.BENCH_MEMORY_LOG_FILE;
const everyMs = Number(process.env.BENCH_MEMORY_LOG_MS || 500);
const snapshotAtMb = Number(process.env.BENCH_HEAP_SNAPSHOT_MB || 0);
const mb = (bytes) => Math.round((bytes / 1048576) * 10) / 10;
let snapshotTaken = false;
/** Garbage collections since the start, by kind: count and pause ms. */
const gc = { minor: [0, 0], major: [0, 0], other: [0, 0] };
const kinds = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
};

function sample() {
  const usage = process.memoryUsage();
  const heap = getHeapStatistics();
  const spaces = {};
  for (const space of getHeapSpaceStatistics()) {
    spaces[space.space_name.replace(/_space$/, '')] = [mb(space.space_size), mb(space.space_used_size)];
  }
  const line = {
    at: Date.now(),
    rss: mb(usage.rss),
    heapTotal: mb(usage.heapTotal),
    heapUsed: mb(usage.heapUsed),
    external: mb(usage.external),
    arrayBuffers: mb(usage.arrayBuffers),
    malloced: mb(heap.malloced_memory),
    peakMalloced: mb(heap.peak_malloced_memory),
    spaces,
    gc: Object.fromEntries(Object.entries(gc).map(([k, [n, ms]]) => [k, [n, Math.round(ms)]])),
  };
  appendFileSync(file, `${JSON.stringify(line)}\n`);
  if (snapshotAtMb > 0 && !snapshotTaken && line.rss >= snapshotAtMb) {
    snapshotTaken = true;
    writeHeapSnapshot(`${dirname(file)}/bot-${process.pid}-${Date.now()}.heapsnapshot`);
  }
}

if (file) {
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = gc[kinds[entry.detail?.kind]] ?? gc.other;
      kind[0] += 1;
      kind[1] += entry.duration;
    }
  }).observe({ entryTypes: ['gc'] });
  setInterval(sample, everyMs).unref();
}
