// Drives the dashboard in Debian's headless Chromium (playwright-core,
// never a downloaded browser) against a real daemon with real VMs: log in,
// create a workspace, open terminals and run commands, stream an exec, take
// a snapshot, edit vault notes, look at every screen, destroy the
// workspace, log out. A screenshot of each
// screen goes to ARTIFACTS_DIR. Run by test/e2e's TestDashboardInBrowser.
//
// Env: DASHBOARD_URL, DASHBOARD_TOKEN, ARTIFACTS_DIR, CHROMIUM (default
// /usr/bin/chromium), WORKSPACE (default browser-ws).
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const url = process.env.DASHBOARD_URL;
const token = process.env.DASHBOARD_TOKEN;
const out = process.env.ARTIFACTS_DIR ?? "test-artifacts/dashboard";
const name = process.env.WORKSPACE ?? "browser-ws";
if (!url || !token) {
  console.error("DASHBOARD_URL and DASHBOARD_TOKEN are required");
  process.exit(2);
}
mkdirSync(out, { recursive: true });

const bootTimeout = 240_000;
const steps = [];
let failed = 0;

async function step(title, f) {
  const start = Date.now();
  try {
    await f();
    steps.push({ title, ok: true, ms: Date.now() - start });
    console.log(`ok   ${title} (${Date.now() - start} ms)`);
  } catch (e) {
    failed++;
    steps.push({ title, ok: false, error: String(e) });
    console.log(`FAIL ${title}: ${e}`);
    throw e;
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
const page = await context.newPage();
const problems = [];
page.on("console", (m) => {
  if (m.type() === "error") problems.push(`console: ${m.text()}`);
});
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
// Any CSP violation means the policy blocked part of the dashboard.
await page.addInitScript(() => {
  document.addEventListener("securitypolicyviolation", (e) => {
    console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
  });
});
const shot = (file) => page.screenshot({ path: join(out, file), fullPage: true });

try {
  await step("login page", async () => {
    await page.goto(url);
    await page.getByLabel("Admin token").waitFor();
    await shot("01-login.png");
  });
  await step("a wrong token is refused", async () => {
    await page.getByLabel("Admin token").fill("not-the-token-at-all");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("alert").filter({ hasText: "not the admin token" }).waitFor();
  });
  await step("log in", async () => {
    await page.getByLabel("Admin token").fill(token);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Workspaces" }).waitFor();
    await page.locator(".pill.ok").waitFor();
    await shot("02-workspaces-empty.png");
  });
  await step("create a workspace", async () => {
    const form = page.getByRole("form", { name: "create workspace" });
    await form.getByLabel("name").fill(name);
    await form.getByLabel("memory_mb").fill("256");
    await form.getByRole("button", { name: "Create workspace" }).click();
    const row = page.locator(`tr[data-workspace="${name}"]`);
    await row.locator(".state-running").waitFor({ timeout: bootTimeout });
    await shot("03-workspaces-running.png");
  });
  await step("open the workspace", async () => {
    await page.locator(`tr[data-workspace="${name}"] a`).click();
    await page.getByRole("heading", { name: new RegExp(`/ ${name}$`) }).waitFor();
  });
  await step("run a command in a terminal", async () => {
    await page.getByTestId("terminal-status").filter({ hasText: "connected" }).first().waitFor({ timeout: 60_000 });
    await page.locator(".terminal .xterm").first().click();
    await page.keyboard.type("echo hello-$((6*7)) from $(hostname)\n");
    await page.locator(".terminal .xterm-rows").first().filter({ hasText: `hello-42 from ${name}` }).waitFor({ timeout: 60_000 });
    await shot("04-terminal.png");
  });
  await step("the terminal follows the window's size", async () => {
    const rows = page.locator(".terminal .xterm-rows").first();
    const size = async (n) => {
      await page.keyboard.type(`echo SZ${n}=$(stty size | tr ' ' x)\n`);
      const re = new RegExp(`SZ${n}=(\\d+)x(\\d+)`);
      await rows.filter({ hasText: re }).waitFor({ timeout: 30_000 });
      return (await rows.textContent()).match(re).slice(1, 3).join("x");
    };
    const before = await size(1);
    await page.setViewportSize({ width: 1000, height: 700 });
    await page.waitForTimeout(500);
    const after = await size(2);
    await page.setViewportSize({ width: 1360, height: 900 });
    if (before === after) throw new Error(`stty size stayed ${before} after the window shrank`);
    console.log(`     terminal ${before} -> ${after}`);
  });
  await step("a second terminal tab", async () => {
    await page.getByRole("button", { name: "+ New terminal" }).click();
    const status = page.locator(".terminal-wrap:not([hidden]) [data-testid=terminal-status]");
    await status.filter({ hasText: "connected" }).waitFor({ timeout: 60_000 });
    await page.locator(".terminal-wrap:not([hidden]) .xterm").click();
    await page.keyboard.type("tty; echo second-tab-ok\n");
    await page.locator(".terminal-wrap:not([hidden]) .xterm-rows").filter({ hasText: "second-tab-ok" }).waitFor({ timeout: 60_000 });
    await shot("05-terminal-second-tab.png");
    await page.getByRole("button", { name: "close shell 2" }).click();
  });
  await step("exec output streamed live", async () => {
    await page.getByRole("tab", { name: "exec" }).click();
    await page.getByLabel("command").fill("echo one; sleep 1; uname -s; echo oops >&2");
    await page.getByRole("button", { name: "Run" }).click();
    await page.getByTestId("exec-status").filter({ hasText: "exit 0" }).waitFor({ timeout: 60_000 });
    const text = await page.getByTestId("exec-output").textContent();
    if (!text.includes("one") || !text.includes("Linux") || !text.includes("oops")) throw new Error(`exec output ${JSON.stringify(text)}`);
    await shot("06-exec.png");
  });
  await step("files: write and read back", async () => {
    await page.getByRole("tab", { name: "files" }).click();
    await page.getByLabel("path").fill("/root/from-browser.txt");
    await page.getByLabel("file content").fill("written by the browser test\n");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByText("saved").waitFor();
    await page.getByLabel("file content").fill("");
    await page.getByRole("button", { name: "Open" }).click();
    await page.getByText(/read \d+ bytes/).waitFor();
    const v = await page.getByLabel("file content").inputValue();
    if (v !== "written by the browser test\n") throw new Error(`read back ${JSON.stringify(v)}`);
    await shot("07-files.png");
  });
  await step("console log", async () => {
    await page.getByRole("tab", { name: "logs" }).click();
    await page.getByTestId("console-log").filter({ hasText: /\S/ }).waitFor();
    await shot("08-logs.png");
  });
  await step("take a snapshot", async () => {
    await page.getByRole("tab", { name: "snapshots" }).click();
    await page.getByText("No snapshots yet.").waitFor();
    await page.getByLabel("snapshot name").fill("browser-snap");
    await page.getByRole("button", { name: "Take snapshot" }).click();
    await page.getByTestId("snapshot-status").filter({ hasText: "snapshot browser-snap taken" }).waitFor({ timeout: 120_000 });
    const row = page.locator('tr[data-snapshot="browser-snap"]');
    await row.waitFor();
    if (!(await row.textContent()).includes("disk")) throw new Error(`snapshot row ${await row.textContent()}`);
    await shot("09-snapshots.png");
  });
  await step("network tab", async () => {
    await page.getByRole("tab", { name: "network" }).click();
    await page.getByText("Internet: off").waitFor();
  });
  await step("audit log", async () => {
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByRole("table", { name: "audit log" }).getByText("workspace_create").first().waitFor();
    await page.getByRole("table", { name: "audit log" }).getByText("terminal").first().waitFor();
    await shot("10-audit.png");
  });
  await step("host metrics", async () => {
    await page.getByRole("link", { name: "Host" }).click();
    await page.getByText(/1 running/).waitFor({ timeout: 30_000 });
    await page.locator("svg.spark").first().waitFor();
    await shot("11-host.png");
  });
  await step("teams screen says it is not there yet", async () => {
    await page.getByRole("link", { name: "Teams" }).click();
    await page.getByText("not available on this daemon yet").waitFor();
    await shot("12-teams.png");
  });
  await step("edit vault notes: frontmatter, tags, links, backlinks, search", async () => {
    await page.getByRole("link", { name: "Vault" }).click();
    await page.getByRole("heading", { name: "Vault" }).waitFor();
    const note = async (path, text) => {
      await page.getByLabel("new note path").fill(path);
      await page.getByRole("button", { name: "New" }).click();
      await page.getByRole("heading", { name: path }).waitFor();
      await page.getByLabel("note text").fill(text);
      await page.getByRole("button", { name: "Save note" }).click();
      await page.getByTestId("vault-status").filter({ hasText: /saved \d+ bytes/ }).waitFor();
    };
    await note("ideas.md", "# Ideas\n\nfirst idea\n");
    await note("projects/plan.md", "---\ntags: [planning, browser]\nstatus: draft\n---\n# Plan\n\nBuild on [[ideas]].\n");
    await page.getByTestId("vault-tags").filter({ hasText: "#planning" }).waitFor();
    // The link leads to the other note, which shows the backlink.
    await page.getByRole("link", { name: "ideas", exact: true }).click();
    await page.getByRole("heading", { name: "ideas.md" }).waitFor();
    await page.getByTestId("vault-backlinks").filter({ hasText: "projects/plan.md" }).waitFor();
    // Edit it: the change is saved and found by search.
    await page.getByLabel("note text").fill("# Ideas\n\nfirst idea\nedited-in-browser\n");
    await page.getByRole("button", { name: "Save note" }).click();
    await page.getByTestId("vault-status").filter({ hasText: "saved" }).waitFor();
    await page.getByRole("textbox", { name: "search", exact: true }).fill("edited-in-browser");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await page.getByRole("list", { name: "search results" }).getByText("ideas.md").waitFor();
    await shot("13-vault.png");
  });
  await step("destroy with confirmation", async () => {
    await page.getByRole("link", { name: "Workspaces" }).click();
    const row = page.locator(`tr[data-workspace="${name}"]`);
    await row.getByRole("button", { name: "Destroy" }).click();
    await shot("14-destroy-confirm.png");
    await row.getByRole("button", { name: "Confirm" }).click();
    await row.waitFor({ state: "detached", timeout: 120_000 });
    await shot("15-destroyed.png");
  });
  await step("log out", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByLabel("Admin token").waitFor();
    await page.reload();
    await page.getByLabel("Admin token").waitFor();
    await shot("16-logged-out.png");
  });
  await step("no console errors or CSP violations", async () => {
    // The refused wrong login is the one expected error (a 403 answer).
    const unexpected = problems.filter((p) => !p.includes("status of 403"));
    if (unexpected.length) throw new Error(unexpected.join("\n"));
  });
} catch {
  await shot("failure.png").catch(() => undefined);
} finally {
  await browser.close();
}
console.log(JSON.stringify({ steps }));
console.log(`${steps.filter((s) => s.ok).length} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
