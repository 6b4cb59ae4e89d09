import { ACTION_STATES, type ActionState } from './actions.js';

/**
 * Where an action stands, as the people following the incident see it: waiting for or carried out by the
 * experts, failed (open until retried or handed over), a customer task, or one of the closed outcomes.
 */
export type ActionStage =
  | 'awaitingExpert'
  | 'expertTasks'
  | 'failed'
  | 'customerTasks'
  | 'completed'
  | 'customerDone'
  | 'rejected';

/** What one state of the action lifecycle means. */
export interface StateMeaning {
  /** Who still has work on the action: the experts, the customer's team, or nobody (closed). */
  openFor: 'expert' | 'customer' | null;
  stage: ActionStage;
  /**
   * Still to be carried out: not begun, failed or closed (awaiting a decision, about to start, a task to
   * do by hand). The card shows why such an action was proposed.
   */
  toDo: boolean;
  /** The states it may move to; any other move is refused. */
  next: readonly ActionState[];
}

/**
 * The action lifecycle (docs/architecture.md, "The action lifecycle"), one row per state. The state
 * machine, the managed status, the card groups and the store's task indexes are all read from here.
 */
export const LIFECYCLE: Readonly<Record<ActionState, StateMeaning>> = {
  proposed: {
    openFor: 'expert',
    stage: 'awaitingExpert',
    toDo: true,
    next: ['approved', 'rejected', 'customerPending'],
  },
  // An approved action whose asset became excluded before it ran turns into a customer task; one whose
  // exclusions can no longer be verified fails rather than run blind.
  approved: {
    openFor: 'expert',
    stage: 'awaitingExpert',
    toDo: true,
    next: ['executing', 'expertTask', 'customerPending', 'failed'],
  },
  // The exclusions are read again right after the move to `executing`: one changed meanwhile stops the
  // action before the executor is called (a customer task if now excluded, failed if unverifiable).
  executing: {
    openFor: 'expert',
    stage: 'awaitingExpert',
    toDo: false,
    next: ['succeeded', 'failed', 'customerPending'],
  },
  expertTask: { openFor: 'expert', stage: 'expertTasks', toDo: true, next: ['succeeded'] },
  // A failure is open work: an expert retries it (exclusions checked again) or hands it to the customer.
  failed: { openFor: 'expert', stage: 'failed', toDo: false, next: ['approved', 'customerPending'] },
  // A customer admin may have the bot carry the task out (`approved`), or the customer may skip it.
  customerPending: {
    openFor: 'customer',
    stage: 'customerTasks',
    toDo: true,
    next: ['doneByCustomer', 'skippedByCustomer', 'approved'],
  },
  succeeded: { openFor: null, stage: 'completed', toDo: false, next: [] },
  rejected: { openFor: null, stage: 'rejected', toDo: false, next: [] },
  doneByCustomer: { openFor: null, stage: 'customerDone', toDo: false, next: [] },
  skippedByCustomer: { openFor: null, stage: 'customerDone', toDo: false, next: [] },
};

/** Every allowed transition of the action lifecycle. Anything else is refused. */
export const TRANSITIONS: Readonly<Record<ActionState, readonly ActionState[]>> = Object.fromEntries(
  ACTION_STATES.map((state) => [state, LIFECYCLE[state].next]),
) as Record<ActionState, readonly ActionState[]>;

export function canTransition(from: ActionState, to: ActionState): boolean {
  return LIFECYCLE[from].next.includes(to);
}

/** The states from which an action can still reach one of `targets` (themselves included). */
export function statesReaching(targets: readonly ActionState[]): ActionState[] {
  const reaching = new Set<ActionState>(targets);
  for (let grew = true; grew; ) {
    grew = false;
    for (const state of ACTION_STATES) {
      if (!reaching.has(state) && LIFECYCLE[state].next.some((next) => reaching.has(next))) {
        reaching.add(state);
        grew = true;
      }
    }
  }
  return ACTION_STATES.filter((state) => reaching.has(state));
}
