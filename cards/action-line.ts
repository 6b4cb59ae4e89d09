import { ACTION_CATALOGUE, hasApi, releaseFromQuarantineSteps } from '../core/actions.js';
import type { ActionRecord, IncidentRecord } from '../core/model.js';
import { LIFECYCLE } from '../core/state-machine.js';
import { guidanceOf, taskIdOf } from '../core/tasks.js';
import { describeAction, fileName, identifierLines, knownFileName } from './assets.js';
import { cut, detail, displayPerson, formatWhen, name } from './text.js';
import type { ActionLineView, ButtonChoice, ButtonView, Tone } from './view-types.js';

/** The antivirus scans an expert may approve, Quick (the default) first. */
const SCAN_CHOICE: ButtonChoice = {
  input: 'scanType',
  label: 'Scan',
  options: [
    { value: 'Quick', label: 'Quick scan' },
    { value: 'Full', label: 'Full scan' },
  ],
};

/** One action as its line on the card shows it: words, live state, details, steps and buttons. */
export function actionLine(
  a: ActionRecord,
  incident: IncidentRecord,
  now: Date,
  portalUrl: string | undefined,
): ActionLineView {
  const spec = ACTION_CATALOGUE[a.type];
  const described = describeAction(a.type, a.target, incident);
  const { asset } = described;
  // Once an expert chose the scan, the line says which one runs (or ran).
  const text =
    a.type === 'runAntivirusScan' && a.scanType ? `${a.scanType} antivirus scan on ${asset}` : described.text;
  const by = a.decidedBy ? ` by ${displayPerson(a.decidedBy, a.decidedByName)}` : '';
  const at = a.decidedAt ?? a.updatedAt;
  const when = at ? ` at ${formatWhen(at, now)}` : '';
  const dry = a.dryRun ? ' (dry run)' : '';
  const details: string[] = [];
  const steps: string[] = [];
  const buttons: ButtonView[] = [];
  const line = (status: string, tone: Tone, icon: string) => ({ status, tone, icon });
  let shown: { status: string; tone: Tone; icon: string };
  let taskId: string | undefined;
  let link: { linkUrl: string; linkLabel: string } | undefined;

  if (a.type === 'softDeleteEmails') {
    const msg = incident.messages.find((m) => m.networkMessageId === a.target.networkMessageId);
    if (msg?.subject)
      details.push(`Email: “${name(msg.subject)}”${msg.sender ? ` from ${name(msg.sender)}` : ''}`);
  }
  if (spec.kind === 'deviceFile' && a.target.sha1) details.push(`SHA-1 ${name(a.target.sha1)}`);
  // Why it was proposed, while it is still to be carried out (a failure shows its own reason instead).
  if (a.reason && LIFECYCLE[a.state].toDo) {
    details.push(`Why: ${detail(a.reason)}`);
  }

  switch (a.state) {
    case 'proposed':
      shown = line(a.blockedReason ? 'Awaiting approval (blocked)' : 'Awaiting approval', 'warning', '⏸️');
      if (a.blockedReason) details.push(`Cannot approve: ${detail(a.blockedReason)}`);
      buttons.push({
        verb: 'approve',
        label: 'Approve',
        audience: 'expert',
        style: 'primary',
        ...(spec.destructive
          ? {
              confirm: {
                title: cut(`${spec.label}?`, 100),
                text: cut(`${text}. The experts will carry this out on the customer's behalf at once.`, 300),
                confirm: 'Approve',
                deny: 'Cancel',
              },
            }
          : {}),
        ...(a.type === 'runAntivirusScan' ? { choice: SCAN_CHOICE } : {}),
      });
      buttons.push({ verb: 'reject', label: 'Reject', audience: 'expert', style: 'default' });
      break;
    case 'approved':
      shown = line(`Approved${by}${when}, starting${dry}`, 'accent', '▶️');
      break;
    case 'executing':
      shown = line(`In progress${a.progress ? `: ${detail(a.progress)}` : ''}${dry}`, 'accent', '🔄');
      break;
    case 'succeeded':
      shown = line(`${spec.done}${by}${when}${dry}`, 'good', '✅');
      if (a.result) details.push(detail(a.result));
      break;
    case 'failed':
      // The reason leads the details; the expert's buttons for a failure (retry, hand over) go in `buttons`.
      shown = line(
        `Failed${a.updatedAt ? ` at ${formatWhen(a.updatedAt, now)}` : ''}${dry}`,
        'attention',
        '❌',
      );
      details.unshift(`Reason: ${a.error ? detail(a.error) : 'not recorded'}`);
      // The id `retry` and `handover` take, for experts who answer in chat.
      taskId = taskIdOf(a.incidentId, a.id);
      buttons.push({
        verb: 'retry',
        label: 'Retry',
        audience: 'expert',
        style: 'primary',
        // A retry sends a new request to Microsoft: asked first (Slack's confirm dialog).
        confirm: {
          title: 'Retry the failed action?',
          text: cut(
            `${text}. The bot sends a new request at once; the failed attempt stays in the audit trail.`,
            300,
          ),
          confirm: 'Retry',
          deny: 'Cancel',
        },
      });
      buttons.push({ verb: 'handover', label: 'Hand to customer', audience: 'expert', style: 'default' });
      break;
    case 'rejected':
      shown = line(`Rejected${by}${when}`, 'default', '🚫');
      break;
    case 'customerPending':
      taskId = taskIdOf(a.incidentId, a.id);
      shown = line('Waiting for your team', 'warning', '👤');
      if (a.excludedBy) details.push(`Excluded by ${detail(a.excludedBy)}: the experts may not act on it.`);
      details.push(...identifierLines(a.type, a.target, incident, { sha1: false }));
      steps.push(`How: ${guidanceOf(a)}`);
      buttons.push({ verb: 'markDone', label: 'Mark done', audience: 'customer', style: 'primary' });
      if (hasApi(a.type)) {
        buttons.push({
          verb: 'runMyself',
          label: 'Run it myself',
          audience: 'admin',
          style: 'default',
          ask: 'confirm',
          confirm: {
            title: 'Run it yourself?',
            text: cut(
              `${text}. The bot carries this out at once as your team's decision, although the asset is excluded from the experts' actions.`,
              300,
            ),
            confirm: 'Run it',
            deny: 'Cancel',
          },
        });
      }
      buttons.push({ verb: 'skip', label: 'Skip', audience: 'customer', style: 'default', ask: 'reason' });
      break;
    case 'doneByCustomer':
      taskId = taskIdOf(a.incidentId, a.id);
      shown = line(
        `Done${a.doneBy ? ` by ${displayPerson(a.doneBy, a.doneByName)}` : by}${a.doneAt ? ` at ${formatWhen(a.doneAt, now)}` : when}`,
        'good',
        '☑️',
      );
      if (a.excludedBy) details.push(`Excluded by ${detail(a.excludedBy)}`);
      break;
    case 'skippedByCustomer':
      taskId = taskIdOf(a.incidentId, a.id);
      shown = line(
        `Skipped${a.skippedBy ? ` by ${displayPerson(a.skippedBy, a.skippedByName)}` : ''}${a.skippedAt ? ` at ${formatWhen(a.skippedAt, now)}` : ''}`,
        'default',
        '⏭️',
      );
      if (a.skipReason) details.push(`Reason: ${detail(a.skipReason)}`);
      if (a.excludedBy) details.push(`Excluded by ${detail(a.excludedBy)}`);
      break;
    case 'expertTask':
      shown = line('To do by hand (no Defender API)', 'warning', '🛠️');
      details.push(...identifierLines(a.type, a.target, incident, { sha1: false }));
      steps.push(...expertSteps(a, incident, asset));
      link = { linkUrl: actionCenterUrl(portalUrl, incident.tenantId), linkLabel: 'Open Action center' };
      buttons.push({ verb: 'markDone', label: 'Mark done', audience: 'expert', style: 'primary' });
      break;
  }

  return {
    incidentId: a.incidentId,
    actionId: a.id,
    type: a.type,
    state: a.state,
    text,
    asset,
    ...shown,
    dryRun: a.dryRun === true,
    destructive: spec.destructive,
    details,
    steps,
    ...(link ?? {}),
    ...(taskId ? { taskId } : {}),
    buttons,
  };
}

function actionCenterUrl(portalUrl: string | undefined, tenantId: string | undefined): string {
  let origin = 'https://security.microsoft.com';
  if (portalUrl) origin = new URL(portalUrl).origin;
  const url = new URL('/action-center/history', origin);
  if (tenantId) url.searchParams.set('tid', tenantId);
  return url.href;
}

/** The steps of the one action Defender has no API for: releasing a file from quarantine. */
function expertSteps(a: ActionRecord, incident: IncidentRecord, device: string): string[] {
  if (a.type !== 'releaseFileFromQuarantine') return [ACTION_CATALOGUE[a.type].guidance];
  const file = fileName(a.target, incident);
  const known = knownFileName(a.target, incident);
  const sha1 = a.target.sha1 ? name(a.target.sha1) : undefined;
  const identity = [known ? `File: ${known}` : undefined, sha1 ? `SHA-1 ${sha1}` : undefined].filter(Boolean);
  return [
    ...(identity.length > 0 ? [identity.join(' · ')] : []),
    ...releaseFromQuarantineSteps(file, device),
    'Then click Mark done here.',
  ];
}
