import { z } from 'zod';
import type { ActionRecord } from '../core/model.js';
import type { ExecutionOutcome, RemoteCheck, SubmitContext, SubmitResult } from '../core/ports.js';
import { type ApiClient, type ApiOutcome, isPassing, odataString } from './defender-http.js';
import {
  DEFAULT_THROTTLE_MS,
  type FollowWindow,
  fail,
  finishedWith,
  formatDuration,
  overdue,
  sameCase,
} from './defender-outcomes.js';

type Outcome = ExecutionOutcome;

/**
 * An analyzed email, as Graph beta documents it (microsoft-graph-docs-contrib, beta
 * `resources/security-analyzedemail.md`, `api/security-analyzedemail-get.md`): only what is read here.
 * `latestDelivery` is an `analyzedEmailDeliveryDetail` (`resources/security-analyzedemaildeliverydetail.md`):
 * `action` (deliveryAction) and `location` (deliveryLocation: `unknown`, `inbox_folder`, `junkFolder`,
 * `deletedFolder`, `quarantine`, `onprem_external`, `failed`, `dropped`, `others`, `unknownFutureValue`).
 */
const analyzedEmailSchema = z.looseObject({
  id: z.string().min(1),
  networkMessageId: z.string().nullish(),
  recipientEmailAddress: z.string().nullish(),
  latestDelivery: z.looseObject({ action: z.string().nullish(), location: z.string().nullish() }).nullish(),
});
type AnalyzedEmail = z.infer<typeof analyzedEmailSchema>;

const analyzedEmailListSchema = z.looseObject({
  value: z.array(analyzedEmailSchema),
  '@odata.nextLink': z.string().nullish(),
});

/**
 * `GET analyzedEmails/{id}` answers the analyzedEmail object; the documented example wraps it in
 * `value`, so both are read.
 */
const analyzedEmailGetSchema = z.union([
  analyzedEmailSchema,
  z.looseObject({ value: analyzedEmailSchema }).transform((wrapped) => wrapped.value),
]);

/** Where a soft delete puts an email: the deleted items (recoverable items) folder. */
const SOFT_DELETED = 'deletedfolder';
/**
 * Latest delivery locations a mailbox remediation cannot change: the remediation has failed for that
 * email (it is not in a cloud mailbox).
 */
const OUT_OF_REACH: Record<string, string> = {
  quarantine: 'is in quarantine, not in a mailbox',
  failed: 'was never delivered (delivery failed)',
  dropped: 'was dropped, never delivered to a mailbox',
  onprem_external: 'was delivered to an on-premises or external mailbox, which Defender cannot remediate',
};

/** Where Action center lists email remediations when Graph gave no `Location`. */
const ACTION_CENTER = 'https://security.microsoft.com/action-center/history';
/** Analyzed emails one `check` asks about at most (Graph allows 150 security requests a minute). */
export const EMAIL_CHECKS_PER_ROUND = 20;
/** Analyzed-email GETs in flight at once. */
const EMAIL_CHECK_PARALLEL = 5;

/** What `EmailRemediation` works with. */
export interface EmailRemediationOptions extends FollowWindow {
  graph: ApiClient;
  /** How far back to look for the analyzed email (days). */
  emailSearchDays: number;
}

/**
 * Soft delete of an email through Microsoft Graph's analyzed emails (beta): sent once, then followed by
 * its emails' latest delivery location.
 */
export class EmailRemediation {
  /** Graph asked (429) not to be asked about analyzed emails before this time. */
  private emailChecksPausedUntil = 0;
  /** Where the next round starts among the remediations in flight, so each is asked in turn. */
  private emailCursor = 0;

  constructor(private readonly options: EmailRemediationOptions) {}

  private get graph(): ApiClient {
    return this.options.graph;
  }

  /**
   * Find the analyzed emails of the message and ask Defender once to soft-delete them. Graph answers 202
   * with a `Location` (an Action center link carrying the bulk id, no status API behind it: beta
   * `api/security-analyzedemail-remediate.md`), so the remediation is followed by the emails' latest
   * delivery location (see `check`): the link is recorded as the remote id and the email ids as its
   * items. One with a remote id is never sent again.
   */
  async submit(action: ActionRecord, context: SubmitContext): Promise<SubmitResult> {
    if (action.externalId) {
      // Sent before a restart: a second remediation would only duplicate it in Action center.
      return {
        kind: 'submitted',
        externalId: action.externalId,
        status: action.remoteStatus ?? 'submitted',
        progress: action.progress ?? 'Soft delete submitted',
        ...(action.remoteItems ? { items: action.remoteItems } : {}),
      };
    }
    const { networkMessageId, recipient } = action.target;
    if (!networkMessageId) {
      return finishedWith(fail('the action names no network message id, so nothing was sent'));
    }
    const found = await this.findAnalyzedEmails(networkMessageId, recipient);
    if (!found.ok) return finishedWith(found);
    if (found.emails.length === 0) {
      return finishedWith(
        fail(
          `no analyzed email with network message id ${networkMessageId}${recipient ? ` for ${recipient}` : ''} in the last ${this.options.emailSearchDays} days, so nothing was deleted`,
        ),
      );
    }
    const ids = found.emails.map((email) => email.id);
    if (!(await context.claim())) return { kind: 'abandoned', reason: 'another run holds the action' };
    const approver = context.approvedBy.replace(/^[a-z]+:/, '');
    const result = await this.graph.call(
      {
        method: 'POST',
        path: '/beta/security/collaboration/analyzedEmails/remediate',
        body: {
          displayName: `MDR: soft delete per incident ${action.incidentId}`,
          description: `Soft delete of message ${networkMessageId}${recipient ? ` to ${recipient}` : ''}, approved by ${context.approvedBy}`,
          severity: 'medium',
          action: 'softDelete',
          ...(/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(approver) ? { approverUpn: approver } : {}),
          remediateSendersCopy: false,
          analyzedEmails: ids.map((id) => ({ id })),
        },
        // A repeated remediation would show twice in Action center: only a 429 (refused) is retried.
        retryUnsafe: false,
      },
      {
        permission: 'SecurityAnalyzedMessage.ReadWrite.All',
        notFound: `the analyzed email ${networkMessageId} was not found`,
        what: 'POST analyzedEmails/remediate',
      },
    );
    if (!result.ok) {
      return finishedWith(
        fail(
          isPassing(result)
            ? `${result.reason}; it may still have been accepted: check Action center > History in the Defender portal before doing it by hand`
            : result.reason,
        ),
      );
    }
    const location = result.headers.get('location') ?? '';
    return {
      kind: 'submitted',
      externalId: /^https:\/\//i.test(location) ? location : ACTION_CENTER,
      status: 'submitted',
      progress: remediationProgress(0, ids.length),
      items: ids,
    };
  }

  /**
   * The state of submitted soft deletes, from each analyzed email's `latestDelivery.location` (`GET
   * /beta/security/collaboration/analyzedEmails/{id}`, beta `api/security-analyzedemail-get.md`):
   * done when every email is in `deletedFolder`, failed when one is where no mailbox remediation reaches
   * (quarantine, dropped, failed delivery, on-premises) or Graph refuses for good, else still running. At
   * most EMAIL_CHECKS_PER_ROUND emails are asked per round, starting each round where the last stopped;
   * a 429 holds every email check for its Retry-After. The bounded wait is the machine actions' one.
   */
  async check(actions: ActionRecord[]): Promise<RemoteCheck[]> {
    const results: RemoteCheck[] = actions.map((action) =>
      overdue(action, this.options)
        ? { kind: 'finished', outcome: this.tooLong(action, 'not asked this round') }
        : { kind: 'unknown', reason: 'not asked this round' },
    );
    if (actions.length === 0) return results;
    let budget = EMAIL_CHECKS_PER_ROUND;
    const start = this.emailCursor % actions.length;
    for (let k = 0; k < actions.length && budget > 0; k++) {
      const i = (start + k) % actions.length;
      const action = actions[i] as ActionRecord;
      if (this.options.now() < this.emailChecksPausedUntil) {
        results[i] = this.emailsUnknown(action, 'Microsoft Graph asked to wait (429)');
        continue;
      }
      const ids = action.remoteItems ?? [];
      if (ids.length === 0) {
        results[i] = {
          kind: 'finished',
          outcome: fail(
            `the soft delete recorded no analyzed email to follow; check it in Action center: ${action.externalId}`,
          ),
        };
        continue;
      }
      budget -= ids.length;
      this.emailCursor = i + 1;
      results[i] = await this.checkOne(action, ids);
    }
    return results;
  }

  private async checkOne(action: ActionRecord, ids: string[]): Promise<RemoteCheck> {
    const answers: ApiOutcome[] = [];
    for (let at = 0; at < ids.length; at += EMAIL_CHECK_PARALLEL) {
      const chunk = ids.slice(at, at + EMAIL_CHECK_PARALLEL);
      answers.push(
        ...(await Promise.all(
          chunk.map((id) =>
            this.graph.call(
              {
                method: 'GET',
                path: `/beta/security/collaboration/analyzedEmails/${encodeURIComponent(id)}`,
                on429: 'return',
                retries: 0,
              },
              {
                // The permission the remediation needs; it covers reading the analyzed emails too.
                permission: 'SecurityAnalyzedMessage.ReadWrite.All',
                notFound: `the analyzed email ${id} is no longer found`,
                what: 'GET analyzedEmails',
              },
            ),
          ),
        )),
      );
    }
    const link = action.externalId as string;
    let deleted = 0;
    let passing: string | undefined;
    const refused: string[] = [];
    for (const [k, result] of answers.entries()) {
      const id = ids[k] as string;
      if (result.ok) {
        const parsed = analyzedEmailGetSchema.safeParse(result.body);
        const location = parsed.success ? (parsed.data.latestDelivery?.location ?? '') : '';
        const where = location.toLowerCase();
        if (where === SOFT_DELETED) deleted++;
        else if (OUT_OF_REACH[where])
          refused.push(`email ${id} ${OUT_OF_REACH[where]} (latest delivery location ${location})`);
        continue;
      }
      if (!isPassing(result, true)) {
        refused.push(result.reason);
        continue;
      }
      if (result.status === 429) {
        this.emailChecksPausedUntil = this.options.now() + (result.retryAfter ?? DEFAULT_THROTTLE_MS);
      }
      passing ??= result.reason;
    }
    if (refused.length > 0) {
      return {
        kind: 'finished',
        outcome: fail(
          `soft delete of ${ids.length} email(s) failed: ${refused.join('; ')}; see Action center: ${link}`,
        ),
      };
    }
    // An email not read this round may be deleted already: the count would go back on the card.
    if (passing) return this.emailsUnknown(action, passing);
    if (deleted === ids.length) {
      return {
        kind: 'finished',
        outcome: {
          ok: true,
          detail: `Defender: ${deleted} email(s) soft-deleted (now in deleted items); Action center: ${link}`,
        },
      };
    }
    if (overdue(action, this.options)) {
      return { kind: 'finished', outcome: this.tooLong(action, undefined, deleted) };
    }
    return { kind: 'running', status: 'submitted', progress: remediationProgress(deleted, ids.length) };
  }

  private emailsUnknown(action: ActionRecord, problem: string): RemoteCheck {
    return overdue(action, this.options)
      ? { kind: 'finished', outcome: this.tooLong(action, problem) }
      : { kind: 'unknown', reason: problem };
  }

  private tooLong(action: ActionRecord, lastProblem?: string, deleted?: number): Outcome {
    const total = action.remoteItems?.length ?? 0;
    const seen = deleted === undefined ? '' : ` (${deleted} of ${total} in deleted items)`;
    const also = lastProblem ? ` (last check: ${lastProblem})` : '';
    return fail(
      `soft delete of ${total} email(s) not confirmed by Defender after ${formatDuration(this.options.maxPollMs)}${seen}; follow it in Action center: ${action.externalId}${also}`,
    );
  }

  private async findAnalyzedEmails(
    networkMessageId: string,
    recipient: string | undefined,
  ): Promise<{ ok: true; emails: AnalyzedEmail[] } | { ok: false; reason: string }> {
    const end = new Date(this.options.now());
    const start = new Date(end.getTime() - this.options.emailSearchDays * 86_400_000);
    const emails: AnalyzedEmail[] = [];
    let next: string | undefined = this.graph.url('/beta/security/collaboration/analyzedEmails', {
      startTime: start.toISOString(),
      endTime: end.toISOString(),
      $filter: `networkMessageId eq ${odataString(networkMessageId)}`,
    });
    for (let page = 0; next && page < 10; page++) {
      const result = await this.graph.call(
        { method: 'GET', path: next },
        {
          permission: 'SecurityAnalyzedMessage.ReadWrite.All',
          notFound: 'the analyzed emails API was not found (it is beta and global-cloud only)',
          what: 'GET analyzedEmails',
        },
      );
      if (!result.ok) return { ok: false, reason: result.reason };
      const parsed = analyzedEmailListSchema.safeParse(result.body);
      if (!parsed.success) {
        return { ok: false, reason: 'Microsoft Graph answered GET analyzedEmails without a value list' };
      }
      for (const email of parsed.data.value) {
        if (email.networkMessageId && !sameCase(email.networkMessageId, networkMessageId)) continue;
        if (recipient && email.recipientEmailAddress && !sameCase(email.recipientEmailAddress, recipient))
          continue;
        emails.push(email);
      }
      const link = parsed.data['@odata.nextLink'] ?? undefined;
      next = link && this.graph.sameOrigin(link) ? link : undefined;
    }
    return { ok: true, emails };
  }
}

/** The card's progress of a soft delete while Defender has not confirmed every email. */
function remediationProgress(deleted: number, total: number): string {
  return `Soft delete submitted: ${deleted} of ${total} email(s) in deleted items`;
}
