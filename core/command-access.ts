import type { RefusalCode } from './decisions.js';
import type { Identity, Roles } from './model.js';
import { rolesOf } from './policy.js';

/**
 * Where a chat command was sent: the SOC channel (Slack: the policy's `channels.slack`; Teams: a
 * conversation of the allowed tenant where the bot is installed), a direct message with the bot, or
 * anywhere else (a channel the SOC does not use: commands are not answered there).
 */
export type CommandPlace = 'socChannel' | 'direct' | 'elsewhere';

/** The fixed chat command names. */
export type CommandName =
  | 'help'
  | 'pending'
  | 'exclusions'
  | 'done'
  | 'skip'
  | 'retry'
  | 'handover'
  | 'exclude'
  | 'unexclude';

export type CommandAccess = { ok: true } | { ok: false; code: RefusalCode; message: string };

/**
 * Who may run which command where. Commands answer only in the SOC channel and in direct messages;
 * the exclusion list (the assets the experts will never touch) is for experts and admins only; the
 * customer task list, `done` and `skip` are for the SOC channel, and in direct messages for the people the
 * policy names. Changing exclusions is further limited to admins by `changeExclusions`, retrying and
 * handing over failed actions to experts by `retryAction` and `handOverAction`.
 */
export function commandAccess(
  roles: Roles,
  who: Identity,
  command: CommandName,
  place: CommandPlace,
): CommandAccess {
  if (place === 'elsewhere') {
    return {
      ok: false,
      code: 'wrong_place',
      message: 'commands are answered only in the SOC channel and in direct messages with the bot',
    };
  }
  const { expert, admin } = rolesOf(roles, who);
  if (command === 'exclusions' && !expert && !admin) {
    return {
      ok: false,
      code: 'not_allowed',
      message: 'only the MDR experts and the admins named in the policy may see the exclusion list',
    };
  }
  if (
    (command === 'pending' || command === 'done' || command === 'skip') &&
    place === 'direct' &&
    !expert &&
    !admin
  ) {
    return {
      ok: false,
      code: 'wrong_place',
      message: `${command} is answered in the SOC channel, for the team that owns the tasks`,
    };
  }
  return { ok: true };
}
