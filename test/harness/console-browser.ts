/// <reference lib="dom" />
/**
 * Debian's chromium for the console tests (playwright-core): its launch arguments, a guard that lets the browser reach
 * 127.0.0.1 only (anything else is stopped and recorded), and each screen's check: axe (no serious or critical
 * violation), its HTML kept for the secrets scan, a full-page screenshot under .data/artifacts/console/ (git-ignored).
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import AxeBuilder from "@axe-core/playwright";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import type { CallFn } from "./caller";
import { REPO_ROOT } from "./moto";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const CONSOLE_ARTIFACTS = join(REPO_ROOT, ".data", "artifacts", "console");

export const CHROMIUM_OPTIONS = {
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
};

/** Stops every request to a host other than 127.0.0.1 (`allow` aside), recording its URL in `blocked`. */
export async function reachLoopbackOnly(context: BrowserContext, blocked: string[], allow: (url: URL) => boolean = () => false): Promise<void> {
  await context.route(
    (url) => url.hostname !== "127.0.0.1" && !allow(url),
    async (route) => {
      blocked.push(route.request().url());
      await route.abort("blockedbyclient");
    },
  );
}

export interface ScreenChecks {
  /** The HTML of every screen checked, for the secrets scan. */
  htmlSeen: { screen: string; html: string }[];
  screenshots: string[];
  checkScreen(page: Page, name: string): Promise<void>;
}

export function screenChecks(): ScreenChecks {
  const htmlSeen: ScreenChecks["htmlSeen"] = [];
  const screenshots: string[] = [];
  return {
    htmlSeen,
    screenshots,
    async checkScreen(page, name) {
      const results = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
      const serious = results.violations
        .filter((violation) => violation.impact === "serious" || violation.impact === "critical")
        .map((violation) => `${violation.id}: ${violation.help} (${violation.nodes.map((node) => node.target.join(" ")).join(", ")})`);
      if (serious.length > 0) throw new Error(`axe on ${name}: ${serious.join("; ")}`);
      htmlSeen.push({ screen: name, html: await page.content() });
      await mkdir(CONSOLE_ARTIFACTS, { recursive: true });
      const file = join(CONSOLE_ARTIFACTS, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      screenshots.push(file);
    },
  };
}

/**
 * A fresh browser (loopback only) in which the tenant's admin accepted an invitation and is signed in to the console;
 * `use` gets the page on its first screen. Throws if the browser tried to reach anything but 127.0.0.1.
 */
export async function asInvitedAdmin(call: CallFn, slug: string, use: (page: Page) => Promise<void>): Promise<void> {
  const userDataDir = await mkdtemp(join(tmpdir(), "mxdr-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, CHROMIUM_OPTIONS);
  const blocked: string[] = [];
  try {
    await reachLoopbackOnly(context, blocked);
    const invited = await call("POST", `/v1/tenants/${slug}/invitations`, { body: { email: `admin@${slug}.example`, role: "admin" } });
    if (invited.status !== 201) throw new Error(`POST /v1/tenants/${slug}/invitations: ${invited.status} ${invited.text}`);
    const page = await context.newPage();
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(invited.body.link);
    await page.getByRole("button", { name: "Accept and sign in" }).click();
    await page.locator("#screen-title").waitFor();
    await use(page);
    if (blocked.length > 0) throw new Error(`the console reached beyond 127.0.0.1: ${blocked.join(", ")}`);
  } finally {
    await context.close();
    await rm(userDataDir, { recursive: true, force: true });
  }
}
