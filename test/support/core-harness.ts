import { DryRunExecutor } from '../../adapters/dry-run-executor.js';
import { MemoryStore } from '../../adapters/memory-store.js';
import { StaticAssetDirectory } from '../../adapters/static-directory.js';
import type { Task } from '../../core/model.js';
import type {
  ActionStore,
  AssetDirectory,
  Clock,
  CoreDeps,
  CoreJob,
  JobScheduler,
  Notifier,
  PolicyView,
  ResponseExecutor,
} from '../../core/ports.js';

/** A clock tests move by hand. */
export class ManualClock implements Clock {
  constructor(private current = new Date('2026-11-27T10:00:00Z')) {}
  now(): Date {
    return new Date(this.current);
  }
  advance(ms: number): void {
    this.current = new Date(this.current.getTime() + ms);
  }
}

/** Records the jobs the core asks for (tests run them explicitly). */
export class RecordingScheduler implements JobScheduler {
  readonly jobs: CoreJob[] = [];
  async schedule(job: CoreJob): Promise<void> {
    this.jobs.push(job);
  }
  /** Every recorded job counts as still to run until a test takes it out of `jobs`. */
  async scheduled(job: CoreJob): Promise<boolean> {
    const same = (j: CoreJob) =>
      j.kind === job.kind &&
      j.incidentId === job.incidentId &&
      ('actionId' in j ? j.actionId : j.event) === ('actionId' in job ? job.actionId : job.event) &&
      (j.kind !== 'execute' || job.kind !== 'execute' || j.retry === job.retry);
    return this.jobs.some(same);
  }
}

/** Records every change notification. */
export class RecordingNotifier implements Notifier {
  readonly changed: string[] = [];
  readonly overdue: Task[] = [];
  async incidentChanged(incidentId: string): Promise<void> {
    this.changed.push(incidentId);
  }
  async taskOverdue(task: Task): Promise<void> {
    this.overdue.push(task);
  }
}

export const EXPERT = { id: 'slack:U0EXPERT1', platform: 'slack' } as const;
export const ADMIN = { id: 'slack:U0ADMIN1', platform: 'slack' } as const;
export const CUSTOMER = { id: 'slack:U0CUSTOMER', platform: 'slack' } as const;
/** Who ingests through the REST API. */
export const INGEST = { id: 'api:ingest', platform: 'api' } as const;

/** A reference to one of the sample incident's (48213) actions. */
export const actionRef = (actionId: string) => ({ incidentId: '48213', actionId });

export const TEST_POLICY: PolicyView = {
  roles: { experts: [EXPERT.id, 'teams:expert-aad'], admins: [ADMIN.id] },
  exclusions: { devices: [], users: [] },
  reminders: { pendingTaskHours: 24 },
};

export interface Harness {
  deps: CoreDeps;
  store: ActionStore;
  executor: DryRunExecutor;
  clock: ManualClock;
  jobs: RecordingScheduler;
  notifier: RecordingNotifier;
}

/** Core dependencies on local adapters with recording fakes of the outward ports. */
export function coreHarness(
  overrides: {
    policy?: Partial<PolicyView>;
    store?: ActionStore;
    directory?: AssetDirectory;
    executor?: ResponseExecutor;
  } = {},
): Harness {
  const store = overrides.store ?? new MemoryStore();
  const executor = new DryRunExecutor();
  const clock = new ManualClock();
  const jobs = new RecordingScheduler();
  const notifier = new RecordingNotifier();
  const deps: CoreDeps = {
    store,
    directory: overrides.directory ?? new StaticAssetDirectory(),
    executor: overrides.executor ?? executor,
    clock,
    notifier,
    jobs,
    policy: { ...TEST_POLICY, ...overrides.policy },
  };
  return { deps, store, executor, clock, jobs, notifier };
}
