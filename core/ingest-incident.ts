import { currentExclusions } from './change-exclusions.js';
import type { Actor } from './decisions.js';
import { auditEntry, recordRefusal } from './decisions.js';
import { requestBatchEmail } from './email-customer-tasks.js';
import { WrongTenantError } from './errors.js';
import { evaluateExclusion } from './exclusions.js';
import { parseIngestBody, toIncidentRecord } from './incident.js';
import type { ActionRecord, IncidentState } from './model.js';
import type { CoreDeps } from './ports.js';
import { nextReminderAt, scheduleReminder } from './remind-task.js';

export interface IngestResult {
  created: boolean;
  added: ActionRecord[];
  state: IncidentState;
}

/**
 * Take one incident notification (the fixed ingest body). Idempotent by incident id: known actions keep
 * their state, new ones are added; actions on excluded assets become customer tasks at once.
 * Throws InvalidInputError (naming the field) before anything is stored, and WrongTenantError (audited)
 * for an incident of another tenant than `deps.ingest.tenantId`. A portal link that is not the
 * Defender portal's (or `deps.ingest.portalHosts`) is replaced by the incident's page there.
 */
export async function ingestIncident(deps: CoreDeps, body: unknown, actor: Actor): Promise<IngestResult> {
  const parsed = parseIngestBody(body);
  const expected = deps.ingest?.tenantId;
  const tenant = parsed.incident.tenantId;
  if (expected && tenant && tenant.trim().toLowerCase() !== expected.trim().toLowerCase()) {
    await recordRefusal(
      deps,
      actor,
      'ingest',
      `wrong_tenant: incident ${parsed.incident.id} of tenant ${tenant.slice(0, 100)}; this bot serves tenant ${expected}`,
    );
    throw new WrongTenantError(parsed.incident.id, tenant);
  }
  const now = deps.clock.now().toISOString();
  // Both reads at once: one round trip to the store instead of two.
  const [existing, exclusionChanges] = await Promise.all([
    deps.store.getIncident(String(parsed.incident.id)),
    deps.store.getExclusionChanges(),
  ]);
  const incident = toIncidentRecord(parsed, existing?.incident.receivedAt ?? now, {
    ...(deps.ingest?.portalHosts ? { portalHosts: deps.ingest.portalHosts } : {}),
  });
  // A notification without a summary (a poll of Graph) keeps the experts' summary already received.
  if (existing && parsed.managedResponse.summary === undefined) incident.summary = existing.incident.summary;
  const known = new Set(existing?.actions.map((a) => a.id));
  const exclusions = await currentExclusions(deps, exclusionChanges);

  const fresh: ActionRecord[] = [];
  for (const a of parsed.managedResponse.actions) {
    if (known.has(a.id)) continue;
    const base: ActionRecord = {
      incidentId: incident.id,
      id: a.id,
      type: a.type,
      target: a.target,
      ...(a.reason ? { reason: a.reason } : {}),
      state: 'proposed',
      excludedBy: null,
      decidedBy: null,
      createdAt: now,
      updatedAt: now,
      version: 1,
    };
    if (a.status === 'completed') {
      fresh.push({
        ...base,
        state: 'succeeded',
        decidedBy: a.completedBy ?? 'mdr-experts',
        decidedAt: a.completedAt ?? now,
      });
      continue;
    }
    const decision = await evaluateExclusion(exclusions, base, incident, deps.directory);
    if (decision.kind === 'excluded')
      fresh.push({ ...base, state: 'customerPending', excludedBy: decision.rule });
    else if (decision.kind === 'unverifiable') fresh.push({ ...base, blockedReason: decision.reason });
    else fresh.push(base);
  }

  const audit = fresh.map((a) =>
    auditEntry(deps, actor, 'ingest', 'ok', a.excludedBy ? `${a.state} (${a.excludedBy})` : a.state, {
      incidentId: incident.id,
      actionId: a.id,
    }),
  );
  if (!existing)
    audit.unshift(auditEntry(deps, actor, 'ingest', 'ok', 'incident received', { incidentId: incident.id }));

  const { created, added } = await deps.store.upsertIncident(incident, fresh, audit);
  const dueAt = nextReminderAt(deps);
  for (const a of added) {
    if (a.state === 'customerPending') {
      await scheduleReminder(deps, { incidentId: a.incidentId, actionId: a.id }, dueAt);
    }
  }
  // The new customer tasks of this notification are one batch: one email for them, whichever replica asks.
  await requestBatchEmail(
    deps,
    incident.id,
    added.filter((a) => a.state === 'customerPending'),
  );
  await deps.notifier.incidentChanged(incident.id, { created });
  // The state as this ingest left it, without reading it back: the incident as written, the actions
  // read before it plus the new ones (an action another replica added at the same moment is in `fresh`).
  const state: IncidentState = { incident, actions: [...(existing?.actions ?? []), ...fresh] };
  if (added.length > 0) await deps.events?.actionsAdded(state, added);
  return { created, added, state };
}
