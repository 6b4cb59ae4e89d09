/** Stable error codes for real failures (expected refusals are values, see `Refusal`). */
export type ErrorCode =
  | 'store_unavailable'
  | 'invalid_input'
  /** The configuration is incomplete or wrong: the message says which variable and how to fix it. */
  | 'config_invalid'
  | 'asset_lookup_failed'
  | 'execution_failed'
  /** Microsoft Graph, Defender, Slack or the Bot Connector failed or answered something unusable. */
  | 'upstream_failed'
  /** Work was handed to a job queue that is closed (the process is stopping). */
  | 'queue_closed'
  | 'not_found'
  | 'conflict'
  | 'wrong_tenant'
  /** A fault of the bot itself (a job nobody handles): report it with the log line. */
  | 'internal';

/** Base class for coded failures; the HTTP layer maps `code` to a status. */
export class MdrError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The store (Redis) could not be reached: nothing was accepted, the caller should retry. */
export class StoreUnavailableError extends MdrError {
  constructor(message = 'the state store is unreachable', options?: { cause?: unknown }) {
    super('store_unavailable', message, options);
  }
}

/** Input failed validation; `issues` name each bad field by its path. */
export class InvalidInputError extends MdrError {
  readonly issues: { path: string; message: string }[];
  constructor(issues: { path: string; message: string }[]) {
    super('invalid_input', issues.map((i) => `${i.path || '(body)'}: ${i.message}`).join('; '));
    this.issues = issues;
  }
}

/** A fact about an asset (group membership, device group) could not be had: callers fail closed. */
export class AssetLookupError extends MdrError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('asset_lookup_failed', message, options);
  }
}

/** A compare-and-set kept losing to concurrent writers: nothing was changed, the caller may retry. */
export class ConflictError extends MdrError {
  constructor(message: string) {
    super('conflict', message);
  }
}

/** An incident of another Entra tenant than the one this bot serves: refused (and audited), nothing stored. */
export class WrongTenantError extends MdrError {
  readonly incidentTenant: string;
  constructor(incidentId: string, incidentTenant: string) {
    super('wrong_tenant', `incident ${incidentId} belongs to another tenant than DEFENDER_TENANT_ID`);
    this.incidentTenant = incidentTenant;
  }
}
