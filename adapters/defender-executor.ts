import type { TokenCredential } from '@azure/identity';
import { releaseFromQuarantineSteps } from '../core/actions.js';
import type { ActionRecord } from '../core/model.js';
import type { RemoteCheck, ResponseExecutor, SubmitContext, SubmitResult } from '../core/ports.js';
import { type AdapterLogger, ApiClient, type RetryOptions } from './defender-http.js';
import { isMachineAction, MachineActions } from './defender-machine-actions.js';
import { fail, finishedWith } from './defender-outcomes.js';
import { DefenderPacer, type SubmissionPacer } from './defender-pacer.js';
import { EmailRemediation } from './graph-email-remediation.js';
import { UserActions } from './graph-user-actions.js';

/** Options of `DefenderExecutor`. */
export interface DefenderExecutorOptions extends RetryOptions {
  credential: TokenCredential;
  /** `DEFENDER_API_URL`, may carry a path prefix. */
  defenderApiUrl: string;
  /** `GRAPH_API_URL`, may carry a path prefix. */
  graphApiUrl: string;
  /**
   * Longest wait for a machine action or an email remediation to finish before the outcome is a failure
   * (default 10 min).
   */
  maxPollMs?: number;
  /**
   * Paces machine-action requests to Defender's limits across replicas (default: this process alone,
   * 100 a minute and 1,500 an hour).
   */
  pacer?: SubmissionPacer;
  /** How far back to look for the analyzed email of `softDeleteEmails` (default 30 days). */
  emailSearchDays?: number;
  /** Injectable for tests (poll deadline and email search window). */
  now?: () => number;
  logger?: AdapterLogger;
}

/** Defender has no API for it: the reason an expert is given instead. */
const NO_RELEASE_API = `Defender has no API to release a file from quarantine: an expert does it by hand and marks it done. ${releaseFromQuarantineSteps('the file', 'the device').join(' ')}`;

/**
 * Carries approved actions out against Microsoft Defender for Endpoint and Microsoft Graph, handing each
 * to its API family: machine actions (`defender-machine-actions.ts`), email remediation
 * (`graph-email-remediation.ts`) and the identity actions (`graph-user-actions.ts`). Machine actions
 * and soft deletes are sent once and then left to `check`; the identity actions end at once. Every
 * failure is returned as an outcome, never thrown, and no call waits for a remote operation to end.
 */
export class DefenderExecutor implements ResponseExecutor {
  readonly dryRun = false;
  private readonly machines: MachineActions;
  private readonly emails: EmailRemediation;
  private readonly users: UserActions;

  constructor(options: DefenderExecutorOptions) {
    const { credential, defenderApiUrl, graphApiUrl, pacer, ...rest } = options;
    const mde = new ApiClient(credential, { service: 'Defender', baseUrl: defenderApiUrl }, rest);
    const graph = new ApiClient(credential, { service: 'Microsoft Graph', baseUrl: graphApiUrl }, rest);
    const window = { maxPollMs: options.maxPollMs ?? 10 * 60_000, now: options.now ?? Date.now };
    this.machines = new MachineActions({
      ...window,
      mde,
      pacer: pacer ?? new DefenderPacer({ perMinute: 100, perHour: 1_500, tenant: 'default' }),
      maxRetries: options.maxRetries ?? 3,
      retryBaseMs: options.retryBaseMs ?? 1000,
      sleep: options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
      logger: options.logger,
    });
    this.emails = new EmailRemediation({ ...window, graph, emailSearchDays: options.emailSearchDays ?? 30 });
    this.users = new UserActions(graph);
  }

  async submit(action: ActionRecord, context: SubmitContext): Promise<SubmitResult> {
    if (isMachineAction(action.type)) return this.machines.submit(action, context);
    if (action.type === 'releaseFileFromQuarantine') return finishedWith(fail(NO_RELEASE_API));
    if (action.type === 'softDeleteEmails') return this.emails.submit(action, context);
    if (!(await context.claim())) return { kind: 'abandoned', reason: 'another run holds the action' };
    return finishedWith(await this.users.run(action));
  }

  async check(actions: ActionRecord[]): Promise<RemoteCheck[]> {
    const results: RemoteCheck[] = actions.map(() => ({ kind: 'unknown', reason: 'not asked' }));
    const machine: number[] = [];
    const emails: number[] = [];
    actions.forEach((action, i) => {
      if (!action.externalId) return;
      if (isMachineAction(action.type)) machine.push(i);
      else if (action.type === 'softDeleteEmails') emails.push(i);
    });
    const answer = async (
      indices: number[],
      family: { check(a: ActionRecord[]): Promise<RemoteCheck[]> },
    ) => {
      const found = await family.check(indices.map((i) => actions[i] as ActionRecord));
      indices.forEach((i, k) => {
        results[i] = found[k] ?? results[i] ?? { kind: 'unknown', reason: 'not asked' };
      });
    };
    await answer(emails, this.emails);
    await answer(machine, this.machines);
    return results;
  }
}
