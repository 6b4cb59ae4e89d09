import { z } from 'zod';
import type { ActionRecord } from '../core/model.js';
import type { ExecutionOutcome } from '../core/ports.js';
import { type ApiClient, type ApiFailure, apiError, odataString } from './defender-http.js';
import { fail, sameCase } from './defender-outcomes.js';

type Outcome = ExecutionOutcome;

/** The user facts the identity actions need (`GET /v1.0/users/{id}?$select=…`). */
const userFactsSchema = z.looseObject({
  id: z.string().min(1),
  onPremisesSyncEnabled: z.boolean().nullish(),
  onPremisesSecurityIdentifier: z.string().nullish(),
});
type UserFacts = z.infer<typeof userFactsSchema>;

/**
 * `GET /v1.0/security/identities/identityAccounts` (v1.0 `api/security-identitycontainer-list-identityaccounts.md`):
 * each account names its provider as `provider` in the documented example and `identityProvider` in the
 * `security-account` resource, so both are read.
 */
const identityAccountListSchema = z.looseObject({
  value: z.array(
    z.looseObject({
      id: z.string().min(1),
      onPremisesSecurityIdentifier: z.string().nullish(),
      accounts: z
        .array(
          z.looseObject({
            identifier: z.string().min(1),
            provider: z.string().nullish(),
            identityProvider: z.string().nullish(),
          }),
        )
        .nullish(),
    }),
  ),
});

/** `invokeAction` answers 200 `{value: {accountId, action, provider, correlationId}}`. */
const invokeActionResultSchema = z.looseObject({
  value: z.looseObject({ correlationId: z.string().nullish() }).nullish(),
});

const roleAssignmentListSchema = z.looseObject({
  value: z.array(z.looseObject({ roleDefinitionId: z.string().min(1) })),
});

/** Built-in role definition ids (their template ids) named in a refusal. */
const ROLE_NAMES: Record<string, string> = {
  '62e90394-69f5-4237-9190-012177145e10': 'Global Administrator',
  '7be44c8a-adaf-4e2a-84d6-ab2649e08a13': 'Privileged Authentication Administrator',
  'e8611ab8-c189-46e8-94e1-60213ab1f814': 'Privileged Role Administrator',
  'fe930be7-5e62-47db-91af-98c3a49a38b1': 'User Administrator',
};

/** The Defender for Identity action for each identity action on an on-premises synced user. */
const MDI_ACTIONS = {
  disableUser: { action: 'disable', done: 'account disabled', manual: 'disable the account' },
  enableUser: { action: 'enable', done: 'account enabled', manual: 'enable the account' },
  forcePasswordReset: {
    action: 'forcePasswordReset',
    done: 'password reset required at next sign-in',
    manual: 'set "User must change password at next logon"',
  },
} as const;

/**
 * The identity actions through Microsoft Graph, each done (or refused) at once. Disable, enable,
 * suspend, unsuspend and force password reset first read whether the user is synced from on-premises
 * Active Directory: Entra ID refuses to change those, so their account step goes through Defender for
 * Identity (`identityAccounts/{id}/invokeAction`) instead.
 */
export class UserActions {
  constructor(private readonly graph: ApiClient) {}

  async run(action: ActionRecord): Promise<Outcome> {
    const user = userRef(action);
    if (!user) return fail('the action names no user id or UPN, so nothing was sent');
    switch (action.type) {
      case 'forcePasswordReset':
      case 'disableUser':
      case 'enableUser':
      case 'suspendUser':
      case 'unsuspendUser': {
        const facts = await this.userFacts(user);
        if (!facts.ok) return facts;
        if (action.type === 'suspendUser') return this.suspendUser(user, facts.user);
        // Unsuspending is enabling the account again (suspend has no API of its own).
        const type = action.type === 'unsuspendUser' ? 'enableUser' : action.type;
        if (facts.user.onPremisesSyncEnabled === true) {
          return this.onPremisesAction(type, user, facts.user);
        }
        if (type === 'forcePasswordReset') return this.forcePasswordReset(user, facts.user.id);
        const enable = type === 'enableUser';
        return this.patchUser(
          user,
          facts.user.id,
          { accountEnabled: enable },
          'User.EnableDisableAccount.All',
          enable ? 'account enabled (accountEnabled true)' : 'account disabled (accountEnabled false)',
        );
      }
      case 'revokeUserTokens':
        return this.revokeSessions(user);
      default:
        return fail(`${action.type} is not an action this executor carries out`);
    }
  }

  /** `GET /v1.0/users/{id}?$select=id,onPremisesSyncEnabled,onPremisesSecurityIdentifier`. */
  private async userFacts(
    user: string,
  ): Promise<{ ok: true; user: UserFacts } | { ok: false; reason: string }> {
    const result = await this.graph.call(
      {
        method: 'GET',
        path: `/v1.0/users/${encodeURIComponent(user)}`,
        query: { $select: 'id,onPremisesSyncEnabled,onPremisesSecurityIdentifier' },
      },
      {
        permission: 'User.Read.All',
        notFound: `user ${user} was not found in Microsoft Entra ID`,
        what: 'GET user',
      },
    );
    if (!result.ok) return { ok: false, reason: `nothing was changed: ${result.reason}` };
    const parsed = userFactsSchema.safeParse(result.body);
    if (!parsed.success) {
      return {
        ok: false,
        reason: `nothing was changed: Microsoft Graph answered GET user ${user} without the user's id`,
      };
    }
    return { ok: true, user: parsed.data };
  }

  /**
   * Require a password change at next sign-in, with multifactor authentication first (so whoever holds
   * the stolen password cannot choose the new one), revoke the sign-in sessions, then confirm the user
   * compromised in Identity Protection (Entra ID P2; a 403 there is a skipped step).
   */
  private async forcePasswordReset(user: string, objectId: string): Promise<Outcome> {
    const reset = await this.patchUser(
      user,
      objectId,
      {
        passwordProfile: { forceChangePasswordNextSignIn: true, forceChangePasswordNextSignInWithMfa: true },
      },
      'User-PasswordProfile.ReadWrite.All',
      'password change required at next sign-in, after MFA',
    );
    if (!reset.ok) return reset;
    return this.afterPasswordReset(user, objectId, 'password change required at next sign-in, after MFA');
  }

  /** The steps after the password reset: revoke sessions, confirm compromised; each step's outcome listed. */
  private async afterPasswordReset(user: string, objectId: string, first: string): Promise<Outcome> {
    const steps = [first];
    const revoked = await this.revokeSessions(user);
    if (!revoked.ok) {
      return fail(`${user}: ${steps.join('; ')}; but revoking sign-in sessions failed: ${revoked.reason}`);
    }
    steps.push('sign-in sessions revoked');
    const confirmed = await this.confirmCompromised(objectId);
    if (!confirmed.ok) {
      return fail(
        `${user}: ${steps.join('; ')}; but confirming the user compromised failed: ${confirmed.reason}`,
      );
    }
    steps.push(confirmed.detail);
    return { ok: true, detail: `${user}: ${steps.join('; ')}` };
  }

  /** `POST /v1.0/identityProtection/riskyUsers/confirmCompromised` (204); a 403 is reported as skipped. */
  private async confirmCompromised(objectId: string): Promise<Outcome> {
    const result = await this.graph.call(
      {
        method: 'POST',
        path: '/v1.0/identityProtection/riskyUsers/confirmCompromised',
        body: { userIds: [objectId] },
      },
      {
        permission: 'IdentityRiskyUser.ReadWrite.All',
        notFound: `user ${objectId} was not found by Identity Protection`,
        what: 'POST riskyUsers/confirmCompromised',
      },
    );
    if (result.ok) {
      return { ok: true, detail: 'confirmed compromised in Identity Protection (user risk high)' };
    }
    if (result.status === 403) {
      return {
        ok: true,
        detail: 'confirm compromised skipped (needs Entra ID P2 / IdentityRiskyUser.ReadWrite.All)',
      };
    }
    return fail(result.reason);
  }

  /**
   * Disable, enable or force a password reset of a user synced from on-premises Active Directory through
   * Defender for Identity: the identity account is found by the user's on-premises SID (`GET
   * /v1.0/security/identities/identityAccounts?$filter=onPremisesSecurityIdentifier eq '…'`), its
   * Active Directory account id is the `accountId` of `POST …/identityAccounts/{id}/invokeAction`.
   */
  private async onPremisesAction(
    type: 'forcePasswordReset' | 'disableUser' | 'enableUser',
    user: string,
    facts: UserFacts,
  ): Promise<Outcome> {
    const mdiAction = MDI_ACTIONS[type];
    const sid = facts.onPremisesSecurityIdentifier;
    if (!sid) {
      return fail(
        `${user} is synced from on-premises Active Directory (Entra ID cannot change it) and Microsoft Graph gave no onPremisesSecurityIdentifier to find it in Defender for Identity, so nothing was sent: ${mdiAction.manual} in Active Directory`,
      );
    }
    const found = await this.graph.call(
      {
        method: 'GET',
        path: '/v1.0/security/identities/identityAccounts',
        query: { $filter: `onPremisesSecurityIdentifier eq ${odataString(sid)}` },
      },
      {
        permission: 'SecurityIdentitiesAccount.Read.All',
        notFound: 'the Defender for Identity identity accounts API was not found (it is global-cloud only)',
        what: 'GET identityAccounts',
      },
    );
    if (!found.ok) {
      return fail(
        `${user} is synced from on-premises Active Directory, so it is changed through Defender for Identity, and nothing was sent: ${found.reason}`,
      );
    }
    const list = identityAccountListSchema.safeParse(found.body);
    const identity = (list.success ? list.data.value : []).find(
      (item) => !item.onPremisesSecurityIdentifier || sameCase(item.onPremisesSecurityIdentifier, sid),
    );
    const account = identity?.accounts?.find((a) =>
      sameCase(a.identityProvider ?? a.provider ?? '', 'activeDirectory'),
    );
    if (!identity || !account) {
      return fail(
        `${user} is synced from on-premises Active Directory, and Defender for Identity observes no Active Directory account with SID ${sid}, so nothing was sent: ${mdiAction.manual} in Active Directory`,
      );
    }
    const result = await this.graph.call(
      {
        method: 'POST',
        path: `/v1.0/security/identities/identityAccounts/${encodeURIComponent(identity.id)}/invokeAction`,
        body: {
          accountId: account.identifier,
          action: mdiAction.action,
          identityProvider: 'activeDirectory',
        },
      },
      {
        permission: 'SecurityIdentitiesActions.ReadWrite.All',
        notFound: `identity account ${identity.id} was not found in Defender for Identity`,
        what: `POST identityAccounts invokeAction ${mdiAction.action}`,
      },
    );
    if (!result.ok) return fail(`${user} is synced from on-premises Active Directory: ${result.reason}`);
    const answered = invokeActionResultSchema.safeParse(result.body);
    const correlation = answered.success ? answered.data.value?.correlationId : undefined;
    const done = `${mdiAction.done} in Active Directory through Defender for Identity${correlation ? ` (correlation id ${correlation})` : ''}`;
    if (type !== 'forcePasswordReset') return { ok: true, detail: `${user}: ${done}` };
    return this.afterPasswordReset(user, facts.id, done);
  }

  /**
   * PATCH the user. A 403 Authorization_RequestDenied is what Graph answers both for a missing
   * permission and for a user who holds an admin role the app's Entra role does not cover (same code,
   * same message), so the user's role assignments are read to tell which.
   */
  private async patchUser(
    user: string,
    objectId: string,
    body: Record<string, unknown>,
    permission: string,
    done: string,
  ): Promise<Outcome> {
    const result = await this.graph.call(
      { method: 'PATCH', path: `/v1.0/users/${encodeURIComponent(user)}`, body },
      { permission, notFound: `user ${user} was not found in Microsoft Entra ID`, what: 'PATCH user' },
    );
    if (result.ok) return { ok: true, detail: `${user}: ${done}` };
    if (result.status === 403 && apiError(result.body).code === 'Authorization_RequestDenied') {
      return fail(await this.deniedOnUser(user, objectId, result));
    }
    return fail(result.reason);
  }

  /**
   * The reason of a 403 Authorization_RequestDenied on PATCH user: when the user holds a directory role
   * (`GET /v1.0/roleManagement/directory/roleAssignments?$filter=principalId eq '…'`), the app needs a
   * privileged Entra role for that user, not a permission; when the roles cannot be read, both causes are
   * named.
   */
  private async deniedOnUser(user: string, objectId: string, denied: ApiFailure): Promise<string> {
    const missingPermission = denied.reason;
    const { code, message } = apiError(denied.body);
    const said = [code, message].filter(Boolean).join(': ');
    const adminRole = `the app needs a privileged Microsoft Entra role that covers this user (Privileged Authentication Administrator; User Administrator covers only users without an admin role)`;
    const roles = await this.graph.call(
      {
        method: 'GET',
        path: '/v1.0/roleManagement/directory/roleAssignments',
        query: { $filter: `principalId eq ${odataString(objectId)}` },
      },
      {
        permission: 'RoleManagement.Read.Directory',
        notFound: `the role assignments of ${user} were not found`,
        what: 'GET roleAssignments',
      },
    );
    const list = roles.ok ? roleAssignmentListSchema.safeParse(roles.body) : undefined;
    if (!list?.success) {
      return `${missingPermission}; or, if ${user} holds a Microsoft Entra admin role, ${adminRole} (its roles could not be read: RoleManagement.Read.Directory tells which)`;
    }
    if (list.data.value.length === 0) return missingPermission;
    const names = [
      ...new Set(
        list.data.value.map(
          (a) => ROLE_NAMES[a.roleDefinitionId.toLowerCase()] ?? `role ${a.roleDefinitionId}`,
        ),
      ),
    ];
    return `Microsoft Graph answered 403 Forbidden to PATCH user: ${user} holds a Microsoft Entra admin role (${names.join(', ')}), so ${adminRole}; this is not a missing API permission (${said})`;
  }

  private async revokeSessions(user: string): Promise<Outcome> {
    // Revoking twice is harmless, so this POST may be retried.
    const result = await this.graph.call(
      { method: 'POST', path: `/v1.0/users/${encodeURIComponent(user)}/revokeSignInSessions` },
      {
        permission: 'User.RevokeSessions.All',
        notFound: `user ${user} was not found in Microsoft Entra ID`,
        what: 'POST revokeSignInSessions',
      },
    );
    if (!result.ok) return fail(result.reason);
    return { ok: true, detail: `${user}: sign-in sessions revoked (takes a few minutes to reach every app)` };
  }

  /**
   * Suspend: block sign-in (PATCH `accountEnabled: false`, or for a user synced from on-premises Active
   * Directory a Defender for Identity `disable`), then revoke the sign-in sessions through Graph.
   */
  private async suspendUser(user: string, facts: UserFacts): Promise<Outcome> {
    const disabled =
      facts.onPremisesSyncEnabled === true
        ? await this.onPremisesAction('disableUser', user, facts)
        : await this.patchUser(
            user,
            facts.id,
            { accountEnabled: false },
            'User.EnableDisableAccount.All',
            'sign-in blocked (accountEnabled false)',
          );
    if (!disabled.ok) return disabled;
    const revoked = await this.revokeSessions(user);
    if (!revoked.ok) return fail(`${disabled.detail}, but revoking sessions failed: ${revoked.reason}`);
    return { ok: true, detail: `${disabled.detail}; sign-in sessions revoked` };
  }
}

/** The user to act on: the Entra object id the exclusion check resolved, else what the action names. */
function userRef(action: ActionRecord): string | undefined {
  return action.resolved?.userId ?? action.target.userId ?? action.target.upn;
}
