/**
 * A real SMTP server for tests (`smtp-server`) on a port the kernel picks on 127.0.0.1, plain text (no STARTTLS), no
 * authentication needed (any AUTH is accepted), that keeps every message it receives: the envelope, the raw message,
 * and its subject and text decoded here (headers with RFC 2047 words; quoted-printable, base64, 7bit/8bit bodies; the
 * text/plain part of a multipart message), since no mail parser is installed.
 *
 *   const smtp = await startSmtpSink();   // SMTP_URL: `smtp://127.0.0.1:${smtp.port}`
 *   const mail = await smtp.waitForMail("ada@example.com");
 *   const [link] = linksIn(mail.text);
 */
import { SMTPServer } from "smtp-server";

export interface ReceivedMail {
  /** The envelope's sender (MAIL FROM), "" for a null sender. */
  from: string;
  /** The envelope's recipients (RCPT TO), as the client gave them. */
  to: string[];
  /** Header fields by lower-case name, unfolded, not decoded; a repeated field keeps its first value. */
  headers: Record<string, string>;
  /** The Subject header, RFC 2047 words decoded. */
  subject: string;
  /**
   * The body's text: the text/plain part (of a multipart message: the first one not an attachment; else the first
   * text part, e.g. HTML as is), transfer encoding and charset decoded, line ends "\n".
   */
  text: string;
  /** The message as received (headers and body, CRLF line ends). */
  raw: string;
  receivedAt: Date;
}

export interface SmtpSink {
  host: "127.0.0.1";
  port: number;
  /** Every message received, in order. */
  messages: ReceivedMail[];
  /**
   * The next message to `to` (an envelope recipient, case-insensitive) that no earlier waitForMail returned: one
   * already received, else the next to arrive within `timeoutMs` (default 10 s).
   */
  waitForMail(to: string, timeoutMs?: number): Promise<ReceivedMail>;
  close(): Promise<void>;
}

const DEFAULT_WAIT_MS = 10_000;

interface Waiter {
  to: string;
  resolve(mail: ReceivedMail): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const messages: ReceivedMail[] = [];
  const handedOut = new Set<ReceivedMail>();
  const waiters: Waiter[] = [];
  const addressedTo = (mail: ReceivedMail, to: string) => mail.to.some((recipient) => recipient.toLowerCase() === to.toLowerCase());

  const receive = (mail: ReceivedMail) => {
    messages.push(mail);
    const waiter = waiters.find((candidate) => addressedTo(mail, candidate.to));
    if (!waiter) return;
    waiters.splice(waiters.indexOf(waiter), 1);
    clearTimeout(waiter.timer);
    handedOut.add(mail);
    waiter.resolve(mail);
  };

  const server = new SMTPServer({
    secure: false,
    disabledCommands: ["STARTTLS"],
    authOptional: true,
    allowInsecureAuth: true,
    onAuth(auth, _session, callback) {
      callback(null, { user: auth.username ?? "anonymous" });
    },
    disableReverseLookup: true,
    logger: false,
    banner: "test SMTP sink",
    closeTimeout: 1_000,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.once("error", (error) => callback(error));
      stream.once("end", () => {
        const { mailFrom, rcptTo } = session.envelope;
        try {
          receive(
            parseMail(
              Buffer.concat(chunks),
              mailFrom ? mailFrom.address : "",
              rcptTo.map((recipient) => recipient.address),
            ),
          );
          callback();
        } catch (error) {
          callback(error instanceof Error ? error : new Error(String(error)));
        }
      });
    },
  });
  // Client errors (a dropped connection) are not the test's failure; they show up as a mail that never arrives.
  server.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    server.server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.server.address();
  if (address === null || typeof address === "string") throw new Error("the SMTP sink has no TCP address");

  return {
    host: "127.0.0.1",
    port: address.port,
    messages,
    waitForMail(to, timeoutMs = DEFAULT_WAIT_MS) {
      const received = messages.find((mail) => !handedOut.has(mail) && addressedTo(mail, to));
      if (received) {
        handedOut.add(received);
        return Promise.resolve(received);
      }
      return new Promise<ReceivedMail>((resolve, reject) => {
        const waiter: Waiter = {
          to,
          resolve,
          reject,
          timer: setTimeout(() => {
            waiters.splice(waiters.indexOf(waiter), 1);
            const seen = messages.map((mail) => `${mail.to.join(",")}: ${JSON.stringify(mail.subject)}`).join("; ") || "none";
            reject(new Error(`no mail to ${to} arrived within ${timeoutMs} ms (received: ${seen})`));
          }, timeoutMs),
        };
        waiters.push(waiter);
      });
    },
    async close() {
      for (const waiter of waiters.splice(0)) {
        clearTimeout(waiter.timer);
        waiter.reject(new Error(`the SMTP sink closed while waiting for a mail to ${waiter.to}`));
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The http(s) URLs in a mail's text, in order, without the punctuation that ends a sentence around them. */
export function linksIn(text: string): string[] {
  return [...text.matchAll(/https?:\/\/[^\s<>"'`()[\]{}]+/g)].map(([url]) => url.replace(/[.,;:!?]+$/, ""));
}

/** Parses a raw message (pure). */
export function parseMail(raw: Buffer, from: string, to: string[]): ReceivedMail {
  // latin1 keeps one character per byte, so bodies can be cut up and decoded later in their own charset.
  const entity = splitEntity(raw.toString("latin1"));
  return {
    from,
    to,
    headers: entity.headers,
    subject: decodeHeaderWords(entity.headers.subject ?? ""),
    text: (textOf(entity) ?? "").replaceAll("\r\n", "\n"),
    raw: raw.toString("utf8"),
    receivedAt: new Date(),
  };
}

interface Entity {
  headers: Record<string, string>;
  /** Bytes as latin1 characters. */
  body: string;
}

function splitEntity(binary: string): Entity {
  const end = /\r?\n\r?\n/.exec(binary);
  const head = end ? binary.slice(0, end.index) : binary;
  const body = end ? binary.slice(end.index + end[0].length) : "";
  const headers: Record<string, string> = {};
  for (const line of head.replace(/\r?\n(?=[ \t])/g, "").split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    // Header values are ASCII, or UTF-8 when the client sent SMTPUTF8.
    headers[name] ??= Buffer.from(line.slice(colon + 1).trim(), "latin1").toString("utf8");
  }
  return { headers, body };
}

/** `text/plain; charset="utf-8"` as { type: "text/plain", params: { charset: "utf-8" } }. */
function contentType(value: string | undefined): { type: string; params: Record<string, string> } {
  const [type = "", ...rest] = (value ?? "text/plain").split(";");
  const params: Record<string, string> = {};
  for (const param of rest) {
    const equals = param.indexOf("=");
    if (equals < 0) continue;
    params[param.slice(0, equals).trim().toLowerCase()] = param
      .slice(equals + 1)
      .trim()
      .replace(/^"(.*)"$/, "$1");
  }
  return { type: type.trim().toLowerCase() || "text/plain", params };
}

/** The text of an entity: itself when text, else its text/plain part (or its first text part). */
function textOf(entity: Entity): string | undefined {
  const leaves = textLeaves(entity);
  const chosen = leaves.find((leaf) => contentType(leaf.headers["content-type"]).type === "text/plain") ?? leaves[0];
  return chosen && decodeBody(chosen);
}

function textLeaves(entity: Entity): Entity[] {
  const { type, params } = contentType(entity.headers["content-type"]);
  if (type.startsWith("multipart/") && params.boundary) return multipartParts(entity.body, params.boundary).flatMap(textLeaves);
  const attachment = /^\s*attachment/i.test(entity.headers["content-disposition"] ?? "");
  return type.startsWith("text/") && !attachment ? [entity] : [];
}

function multipartParts(body: string, boundary: string): Entity[] {
  const parts: string[][] = [];
  let current: string[] | undefined;
  for (const line of body.split(/\r?\n/)) {
    const trimmed = line.trimEnd();
    if (trimmed === `--${boundary}--`) break;
    if (trimmed === `--${boundary}`) {
      current = [];
      parts.push(current);
    } else {
      current?.push(line);
    }
  }
  return parts.map((lines) => splitEntity(lines.join("\r\n")));
}

function decodeBody(entity: Entity): string {
  const encoding = (entity.headers["content-transfer-encoding"] ?? "7bit").trim().toLowerCase();
  const bytes =
    encoding === "quoted-printable"
      ? decodeQuotedPrintable(entity.body)
      : encoding === "base64"
        ? Buffer.from(entity.body.replace(/[^A-Za-z0-9+/=]/g, ""), "base64")
        : Buffer.from(entity.body, "latin1");
  return decodeCharset(bytes, contentType(entity.headers["content-type"]).params.charset);
}

/** Quoted-printable (RFC 2045): "=" at a line's end is a soft break, "=XX" a byte, trailing blanks of a line dropped. */
function decodeQuotedPrintable(text: string): Buffer {
  const unwrapped = text.replace(/[ \t]+(?=\r?\n)/g, "").replace(/=\r?\n/g, "");
  const bytes: number[] = [];
  for (let i = 0; i < unwrapped.length; i++) {
    const hex = unwrapped[i] === "=" ? unwrapped.slice(i + 1, i + 3) : "";
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(unwrapped.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

function decodeCharset(bytes: Buffer, charset = "utf-8"): string {
  try {
    return new TextDecoder(charset).decode(bytes);
  } catch {
    return new TextDecoder("utf-8").decode(bytes); // a charset TextDecoder does not know
  }
}

/** RFC 2047 encoded words (`=?UTF-8?Q?...?=`, `=?UTF-8?B?...?=`); blanks between two words are dropped. */
function decodeHeaderWords(value: string): string {
  return value
    .replace(/(\?=)\s+(?==\?)/g, "$1")
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_word, charset: string, encoding: string, encoded: string) => {
      const bytes = encoding.toUpperCase() === "B" ? Buffer.from(encoded, "base64") : decodeQuotedPrintable(encoded.replaceAll("_", " "));
      return decodeCharset(bytes, charset.split("*")[0]);
    });
}
