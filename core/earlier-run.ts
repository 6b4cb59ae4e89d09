import type { ActionRecord } from './model.js';

/**
 * Every field an earlier run of an action leaves on its record: its remote operation and the items it
 * acted on, who held it and when, what Defender last said, its outcome, and what the execute-time check
 * resolved. A new run (an expert's retry, a customer admin's Run it myself) starts without any of them,
 * so it sends its own request, is followed by its own remote id and never adopts the earlier operation.
 */
export const EARLIER_RUN_FIELDS = [
  'externalId',
  'remoteItems',
  'executingSince',
  'submittedAt',
  'remoteStatus',
  'executionToken',
  'leaseAt',
  'unsent',
  'dryRun',
  'progress',
  'result',
  'error',
  'resolved',
  'blockedReason',
] as const satisfies readonly (keyof ActionRecord)[];

export type EarlierRunField = (typeof EARLIER_RUN_FIELDS)[number];

/** A patch that clears every field of an earlier run (see `EARLIER_RUN_FIELDS`). */
export function clearEarlierRun(): { [K in EarlierRunField]: undefined } {
  return Object.fromEntries(EARLIER_RUN_FIELDS.map((field) => [field, undefined])) as {
    [K in EarlierRunField]: undefined;
  };
}
