import type { ActionState, ActionType, ScanType } from '../core/actions.js';
import type { ButtonVerb } from '../core/button-verbs.js';
import type { ManagedStatus } from '../core/managed-status.js';
import type { Severity } from '../core/model.js';
import type { ActionStage } from '../core/state-machine.js';

/** A colour both platforms can show: Adaptive Card colour names, with a hex value for HTML previews. */
export type Tone = 'default' | 'good' | 'warning' | 'attention' | 'accent';

/**
 * Who a button is meant for; the core decides at click time, the card only chooses what to show.
 * `admin`: the customer's admins (who are customers too, so they also see the customer's buttons).
 */
export type Audience = 'expert' | 'customer' | 'admin';

/** A button on an action line; its payload is only ever the incident id and the action id. */
export interface ButtonView {
  verb: ButtonVerb;
  label: string;
  audience: Audience;
  style: 'primary' | 'danger' | 'default';
  /** Asked before a destructive approval: names the action and the asset. */
  confirm?: { title: string; text: string; confirm: string; deny: string };
  /**
   * A choice sent with the click (the antivirus scan to run), the first option the default: Teams shows
   * a choice set beside the button, Slack one button per option.
   */
  choice?: ButtonChoice;
  /**
   * A step before the click is sent: `confirm` shows `confirm` first on every platform (Teams: a card
   * that opens under the button with the confirming button); `reason` asks for a reason, sent with it
   * (Teams: a text input under the button; Slack takes it through the `skip` command instead).
   */
  ask?: 'confirm' | 'reason';
}

/** What a button lets the clicker choose; the core validates the value again. */
export interface ButtonChoice {
  /** The name the value travels under (a Teams input id is this plus the action id). */
  input: 'scanType';
  label: string;
  options: { value: ScanType; label: string }[];
}

/** One managed-response action as a person reads it: what, on which asset, and its live state. */
export interface ActionLineView {
  incidentId: string;
  actionId: string;
  type: ActionType;
  state: ActionState;
  /** "Isolate device ws-042.contoso.com". */
  text: string;
  /** The asset in words: "ws-042.contoso.com", "j.doe@contoso.com". */
  asset: string;
  /** The live state in words: "Isolated by @U0EXPERT1 at 10:42 UTC". */
  status: string;
  tone: Tone;
  /** A Unicode symbol for the state (both platforms show it as is). */
  icon: string;
  dryRun: boolean;
  destructive: boolean;
  /** Extra lines: reason, why excluded, "Cannot approve: ...", the result or the error. */
  details: string[];
  /** What to do by hand (customer guidance, expert task steps). */
  steps: string[];
  /** Where to do it by hand (expert tasks). */
  linkUrl?: string;
  linkLabel?: string;
  /** `48213:act-3` for customer tasks (the id `/mdr done` takes) and failed actions (`retry`, `handover`). */
  taskId?: string;
  buttons: ButtonView[];
}

/** The managed-response panel's groups: one per stage of the lifecycle (`LIFECYCLE` in core). */
export type ActionGroupKey = ActionStage;

/** A titled list of action lines, cut with "and N more". */
export interface ActionGroupView {
  key: ActionGroupKey;
  title: string;
  /** Every action in the group, shown or not. */
  total: number;
  items: ActionLineView[];
  /** How many were left out ("and N more"). */
  more: number;
}

/** The incident's assets of one kind, cut with "and N more". */
export interface AssetGroupView {
  key: 'devices' | 'users' | 'messages' | 'files';
  title: string;
  total: number;
  items: string[];
  more: number;
}

/** Everything a card shows about one incident; both renderers draw only from this. */
export interface IncidentCardView {
  incidentId: string;
  title: string;
  severity: { level: Severity; label: string; tone: Tone; colour: string; icon: string };
  status: { value: ManagedStatus; label: string; tone: Tone; icon: string };
  portalUrl?: string;
  /** `${apiBaseUrl}/api/incidents/{id}` when an API base URL was given. */
  apiUrl?: string;
  /** Where the full lists are: the API when known, else the portal. */
  moreUrl?: string;
  receivedAt: string;
  assets: AssetGroupView[];
  summary: { text: string; cut: boolean };
  groups: ActionGroupView[];
  /**
   * Open work only, over all actions shown or not: `open` (everything not closed, running ones
   * included), `failed` (open until retried or handed over), `needExpert` (the experts' other open work:
   * awaiting approval, starting, running or by hand), `needCustomer` (pending customer tasks; done and skipped ones are closed).
   */
  counts: { open: number; failed: number; needExpert: number; needCustomer: number };
}
