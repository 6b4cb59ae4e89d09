import { describeAction, taskIdentifiers } from '../cards/assets.js';
import {
  changeExclusions,
  currentExclusions,
  EXCLUSION_KINDS,
  type ExclusionKind,
  type ExclusionResult,
} from '../core/change-exclusions.js';
import { type CommandPlace, commandAccess } from '../core/command-access.js';
import { type ActionRef, type Actor, type Decision, type Refusal, recordRefusal } from '../core/decisions.js';
import { InvalidInputError } from '../core/errors.js';
import { handOverAction } from '../core/hand-over-action.js';
import { listTasks } from '../core/list-tasks.js';
import { markTaskDone } from '../core/mark-task-done.js';
import type { Exclusions, ExclusionsInForce, Task } from '../core/model.js';
import type { CoreDeps } from '../core/ports.js';
import { retryAction } from '../core/retry-action.js';
import { skipTask } from '../core/skip-task.js';
import { parseTaskId } from '../core/tasks.js';

/** The chat commands (Slack `/mdr <words>`, Teams: the same words sent to the bot). Names are fixed. */
export type ChatCommand =
  | { name: 'help' }
  | { name: 'pending' }
  | { name: 'exclusions' }
  | { name: 'done'; taskId: string }
  | { name: 'skip'; taskId: string; reason: string }
  | { name: 'retry' | 'handover'; taskId: string }
  | { name: 'exclude' | 'unexclude'; kind: ExclusionKind; value: string };

/** What a command answered, neutral of platform; `shared` says it changed state others see. */
export type CommandReply =
  | { kind: 'help'; text: string; shared: false }
  | { kind: 'tasks'; tasks: Task[]; shared: false }
  | { kind: 'exclusions'; exclusions: ExclusionsInForce; shared: false }
  | { kind: 'done'; taskId: string; ref: ActionRef; decision: Decision; shared: boolean }
  | { kind: 'skip'; taskId: string; ref: ActionRef; decision: Decision; shared: boolean }
  | { kind: 'retry' | 'handover'; taskId: string; ref: ActionRef; decision: Decision; shared: boolean }
  | { kind: 'exclusionChange'; op: 'exclude' | 'unexclude'; result: ExclusionResult; shared: boolean }
  | { kind: 'usage'; text: string; shared: false }
  | { kind: 'refused'; refusal: Refusal; shared: false };

export type { CommandPlace } from '../core/command-access.js';

export const HELP_TEXT = [
  'MDR bot commands:',
  '• help: this list',
  '• pending: pending customer tasks, each with a Mark done button',
  '• done <taskId>: mark a task done (customers and admins), e.g. done 48213:act-3',
  '• skip <taskId> <reason>: close a task without doing it, saying why (customers and admins)',
  '• retry <taskId>: run a failed action again, exclusions checked again (experts), e.g. retry 48213:act-1',
  "• handover <taskId>: hand a failed action to the customer's team, with the failure reason (experts)",
  '• exclusions: the exclusion rules in force and where each comes from',
  `• exclude ${EXCLUSION_KINDS.join('|')} <value>: add an exclusion (admins)`,
  `• unexclude ${EXCLUSION_KINDS.join('|')} <value>: remove one (admins)`,
].join('\n');

const usage = (text: string): CommandReply => ({
  kind: 'usage',
  text: `${text}\n\n${HELP_TEXT}`,
  shared: false,
});

/** Parse the words of a command; unknown words get the help text with what was wrong. */
export function parseCommand(text: string): ChatCommand | { error: string } {
  const words = text.trim().split(/\s+/).filter(Boolean);
  const [verb = 'help', ...rest] = words;
  switch (verb.toLowerCase()) {
    case 'help':
      return { name: 'help' };
    case 'pending':
      return { name: 'pending' };
    case 'exclusions':
      return { name: 'exclusions' };
    case 'done':
      if (rest.length !== 1 || !rest[0])
        return { error: 'Usage: done <taskId> (the ids are listed by "pending")' };
      return { name: 'done', taskId: rest[0] };
    case 'skip':
      if (rest.length < 2 || !rest[0])
        return {
          error: 'Usage: skip <taskId> <reason> (a reason is required, e.g. skip 48213:act-3 handled by IT)',
        };
      return { name: 'skip', taskId: rest[0], reason: rest.slice(1).join(' ') };
    case 'retry':
    case 'handover': {
      const name = verb.toLowerCase() as 'retry' | 'handover';
      if (rest.length !== 1 || !rest[0])
        return { error: `Usage: ${name} <taskId> (the failed action's id on the card, e.g. 48213:act-1)` };
      return { name, taskId: rest[0] };
    }
    case 'exclude':
    case 'unexclude': {
      const [kind, ...value] = rest;
      const name = verb.toLowerCase() as 'exclude' | 'unexclude';
      if (
        !kind ||
        !(EXCLUSION_KINDS as readonly string[]).includes(kind.toLowerCase()) ||
        value.length === 0
      ) {
        return { error: `Usage: ${name} ${EXCLUSION_KINDS.join('|')} <value>` };
      }
      return { name, kind: kind.toLowerCase() as ExclusionKind, value: value.join(' ') };
    }
    default:
      return { error: `Unknown command "${verb}".` };
  }
}

/**
 * Run a chat command through the core as `actor`, sent from `place`. Commands sent where the bot does
 * not answer them, or by someone who may not run them, are refused and audited.
 */
export async function runCommand(
  deps: CoreDeps,
  text: string,
  actor: Actor,
  place: CommandPlace,
): Promise<CommandReply> {
  const command = parseCommand(text);
  const access = commandAccess(
    deps.policy.roles,
    actor.id,
    'error' in command ? 'help' : command.name,
    place,
  );
  if (!access.ok) {
    const event = `command:${'error' in command ? 'unknown' : command.name}`;
    await recordRefusal(deps, actor, event, `${access.code}: ${access.message}`);
    return { kind: 'refused', refusal: access, shared: false };
  }
  if ('error' in command) return usage(command.error);
  switch (command.name) {
    case 'help':
      return { kind: 'help', text: HELP_TEXT, shared: false };
    case 'pending':
      return { kind: 'tasks', tasks: await listTasks(deps, 'pending'), shared: false };
    case 'exclusions':
      return { kind: 'exclusions', exclusions: await currentExclusions(deps), shared: false };
    case 'done': {
      const ref = parseTaskId(command.taskId);
      if (!ref) return usage(`"${command.taskId}" is not a task id: task ids look like 48213:act-3.`);
      const decision = await markTaskDone(deps, ref, actor);
      return { kind: 'done', taskId: command.taskId, ref, decision, shared: decision.ok };
    }
    case 'skip': {
      const ref = parseTaskId(command.taskId);
      if (!ref) return usage(`"${command.taskId}" is not a task id: task ids look like 48213:act-3.`);
      const decision = await skipTask(deps, ref, actor, command.reason);
      return { kind: 'skip', taskId: command.taskId, ref, decision, shared: decision.ok };
    }
    case 'retry':
    case 'handover': {
      const ref = parseTaskId(command.taskId);
      if (!ref) return usage(`"${command.taskId}" is not a task id: task ids look like 48213:act-1.`);
      const run = command.name === 'retry' ? retryAction : handOverAction;
      const decision = await run(deps, ref, actor);
      return { kind: command.name, taskId: command.taskId, ref, decision, shared: decision.ok };
    }
    case 'exclude':
    case 'unexclude': {
      try {
        const result = await changeExclusions(
          deps,
          { op: command.name === 'exclude' ? 'add' : 'remove', kind: command.kind, value: command.value },
          actor,
        );
        return { kind: 'exclusionChange', op: command.name, result, shared: result.ok && result.changed };
      } catch (error) {
        if (error instanceof InvalidInputError)
          return usage(`The value ${error.issues[0]?.message ?? 'is invalid'}.`);
        throw error;
      }
    }
  }
}

/** One line per exclusion rule, as chat shows them, with where it comes from when known. */
export function describeExclusions(exclusions: Exclusions | ExclusionsInForce): string[] {
  const from = (r: object) => ('source' in r && typeof r.source === 'string' ? ` (${r.source})` : '');
  const lines = [
    ...exclusions.devices.map(
      (r) =>
        ('id' in r
          ? `device ${r.id}`
          : 'name' in r
            ? `device ${r.name}`
            : 'group' in r
              ? `device-group ${r.group}`
              : `device-tag ${r.tag}`) + from(r),
    ),
    ...exclusions.users.map(
      (r) => ('upn' in r ? `user ${r.upn}` : 'id' in r ? `user ${r.id}` : `user-group ${r.group}`) + from(r),
    ),
  ];
  return lines.length > 0 ? lines : ['(no exclusions: the experts may act on every asset)'];
}

/** One task of the `pending` answer as text: what, why it is the customer's, and the asset's identifiers. */
function taskText(t: Task): string {
  const what = describeAction(t.type, t.target).text;
  const lines = [`• ${t.id}: ${what} (${t.excludedBy ? `excluded by ${t.excludedBy}` : 'handed over'})`];
  for (const id of taskIdentifiers(t)) lines.push(`   ${id}`);
  return lines.join('\n');
}

/** The text answer to a command, for platforms that show text (Teams messages, Slack fallbacks). */
export function replyText(reply: CommandReply): string {
  switch (reply.kind) {
    case 'help':
    case 'usage':
      return reply.text;
    case 'refused':
      return `Refused: ${reply.refusal.message}.`;
    case 'tasks':
      return reply.tasks.length === 0 ? 'No pending customer tasks.' : reply.tasks.map(taskText).join('\n');
    case 'exclusions':
      return `Exclusions in force:\n${describeExclusions(reply.exclusions)
        .map((l) => `• ${l}`)
        .join('\n')}`;
    case 'done':
      return reply.decision.ok ? `Task ${reply.taskId} marked done.` : `Not done: ${reply.decision.message}`;
    case 'skip':
      return reply.decision.ok
        ? `Task ${reply.taskId} skipped: ${reply.decision.action.skipReason ?? ''}`
        : `Not skipped: ${reply.decision.message}`;
    case 'retry':
      return reply.decision.ok
        ? `Retrying ${reply.taskId}: approved again, it runs now.`
        : `Not retried: ${reply.decision.message}`;
    case 'handover':
      return reply.decision.ok
        ? `Handed ${reply.taskId} to the customer: it is now a customer task, with the failure reason.`
        : `Not handed over: ${reply.decision.message}`;
    case 'exclusionChange': {
      if (!reply.result.ok) return `Refused: ${reply.result.message}`;
      if (!reply.result.changed)
        return `Nothing changed: ${reply.result.rule} was ${reply.op === 'exclude' ? 'already excluded' : 'not excluded'}.`;
      const moved = reply.result.movedToCustomer.length;
      const suffix = moved > 0 ? ` ${moved} proposed action(s) on it are now customer tasks.` : '';
      return `${reply.op === 'exclude' ? 'Excluded' : 'No longer excluded'}: ${reply.result.rule}.${suffix}`;
    }
  }
}
