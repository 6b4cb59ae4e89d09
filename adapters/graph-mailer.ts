import type { TokenCredential } from '@azure/identity';
import type { EmailMessage, Mailer, MailResult } from '../core/ports.js';
import { type AdapterLogger, ApiClient, type RetryOptions } from './defender-http.js';

/** Where and as whom the Graph mailer sends. */
export interface GraphMailerOptions extends RetryOptions {
  credential: TokenCredential;
  graphApiUrl: string;
  /** MAIL_SENDER: the mailbox the app sends as. */
  sender: string;
  logger?: AdapterLogger;
}

/**
 * Sends notification email through Microsoft Graph as MAIL_SENDER:
 * `POST /v1.0/users/{sender}/sendMail` with `{message: {subject, body: {contentType, content},
 * toRecipients: [{emailAddress: {address}}]}, saveToSentItems}`, answered `202 Accepted` with no body;
 * application permission `Mail.Send` (checked against
 * https://learn.microsoft.com/en-us/graph/api/user-sendmail?view=graph-rest-1.0).
 * 429 waits its `Retry-After`, 5xx and network faults back off, a bounded number of times (ApiClient).
 */
export class GraphMailer implements Mailer {
  private readonly graph: ApiClient;
  private readonly sender: string;

  constructor(options: GraphMailerOptions) {
    this.graph = new ApiClient(
      options.credential,
      { service: 'Microsoft Graph', baseUrl: options.graphApiUrl },
      options,
    );
    this.sender = options.sender;
  }

  async send(message: EmailMessage): Promise<MailResult> {
    const path = `/v1.0/users/${encodeURIComponent(this.sender)}/sendMail`;
    const result = await this.graph.call(
      {
        method: 'POST',
        path,
        body: {
          message: {
            subject: message.subject,
            body: { contentType: 'Text', content: message.text },
            toRecipients: message.to.map((address) => ({ emailAddress: { address } })),
          },
          saveToSentItems: true,
        },
        // A notification sent twice after a lost answer is better than one never sent.
        retryUnsafe: true,
      },
      {
        permission: 'Mail.Send (and, if scoped, an application access policy that includes MAIL_SENDER)',
        notFound: `the mailbox ${this.sender} (MAIL_SENDER) was not found`,
        what: 'POST sendMail',
      },
    );
    return result.ok ? { ok: true } : { ok: false, reason: result.reason };
  }
}

/** An email local mode would have sent, kept for the preview page. */
export interface OutboxEntry extends EmailMessage {
  at: string;
  from: string;
}

/** Local mode's mailer: keeps the latest emails for the preview page instead of sending them. */
export class PreviewOutbox implements Mailer {
  private readonly entries: OutboxEntry[] = [];

  constructor(
    private readonly from: string,
    private readonly keep = 50,
  ) {}

  async send(message: EmailMessage): Promise<MailResult> {
    this.entries.unshift({ ...message, from: this.from, at: new Date().toISOString() });
    this.entries.length = Math.min(this.entries.length, this.keep);
    return { ok: true };
  }

  /** Newest first. */
  list(): OutboxEntry[] {
    return [...this.entries];
  }
}
