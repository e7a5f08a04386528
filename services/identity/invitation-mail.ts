/** Invitation mails, sent over SMTP (nodemailer) when SMTP_URL is configured. */
import { createTransport } from "nodemailer";
import { UpstreamUnavailableError } from "../../lib/errors";

export interface InvitationMail {
  to: string;
  tenantName: string;
  role: string;
  invitedBy: string;
  link: string;
  expiresAt: Date;
}

export interface InvitationMailer {
  send(mail: InvitationMail): Promise<void>;
}

export function createSmtpInvitationMailer({ smtpUrl, from }: { smtpUrl: string; from: string }): InvitationMailer {
  const transport = createTransport(smtpUrl);
  return {
    async send(mail) {
      try {
        await transport.sendMail({
          from,
          to: mail.to,
          subject: `You are invited to ${mail.tenantName} on Mini-XDR`,
          text: [
            `${mail.invitedBy} invited you to ${mail.tenantName} on Mini-XDR as ${mail.role === "admin" ? "an admin" : "a viewer"}.`,
            "",
            "Open this link to accept and sign in (it works once):",
            mail.link,
            "",
            `It expires at ${mail.expiresAt.toISOString()}. If you did not expect this invitation, ignore this mail.`,
          ].join("\n"),
        });
      } catch (error) {
        throw new UpstreamUnavailableError(
          `the invitation mail could not be sent (${error instanceof Error ? error.message : String(error)}): nothing was created; try again`,
          { code: "mail_unavailable" },
        );
      }
    },
  };
}
