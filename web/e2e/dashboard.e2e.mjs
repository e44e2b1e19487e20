// Drives the dashboard in Debian's headless Chromium (playwright-core,
// never a downloaded browser) against a real daemon with real VMs: log in,
// create a workspace, open terminals and run commands, stream an exec, take
// a snapshot, create a one-member team, add tasks and move them on the
// kanban (drag and drop, the status menu, the arrow keys) and check the
// task notes and INDEX.md on disk, message the team, edit vault notes, look
// at every screen, destroy the workspace, log out. A screenshot of each
// screen goes to ARTIFACTS_DIR. Run by test/e2e's TestDashboardInBrowser.
//
// Env: DASHBOARD_URL, DASHBOARD_TOKEN, ARTIFACTS_DIR, CHROMIUM (default
// /usr/bin/chromium), WORKSPACE (default browser-ws), TEAM (default crew),
// VAULT_DIR (the daemon's vault on disk; the board checks need it),
// AGENTISO_BIN and API_SOCKET (the CLI moves a task while the page watches).
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const url = process.env.DASHBOARD_URL;
const token = process.env.DASHBOARD_TOKEN;
const out = process.env.ARTIFACTS_DIR ?? "test-artifacts/dashboard";
const name = process.env.WORKSPACE ?? "browser-ws";
const teamName = process.env.TEAM ?? "crew";
const vaultDir = process.env.VAULT_DIR;
const cliBin = process.env.AGENTISO_BIN;
const apiSocket = process.env.API_SOCKET;
if (!url || !token || !vaultDir || !cliBin || !apiSocket) {
  console.error("DASHBOARD_URL, DASHBOARD_TOKEN, VAULT_DIR, AGENTISO_BIN and API_SOCKET are required");
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
// waitOnDisk polls a vault file until it contains every wanted string.
async function waitOnDisk(rel, wants) {
  const file = join(vaultDir, rel);
  let text = "";
  for (let i = 0; i < 50; i++) {
    try {
      text = readFileSync(file, "utf8");
    } catch {
      text = "";
    }
    if (wants.every((w) => text.includes(w))) return text;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${rel} on disk lacks ${JSON.stringify(wants)}:\n${text}`);
}
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
    await page.getByText("Workspace networking is off on this daemon").waitFor();
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
  await step("teams: create a one-member team", async () => {
    await page.getByRole("link", { name: "Teams" }).click();
    await page.getByRole("heading", { name: "Teams" }).waitFor();
    await page.getByText("No teams yet.").waitFor();
    const form = page.getByRole("form", { name: "create team" });
    await form.getByLabel("team name").fill(teamName);
    await form.getByLabel("members").fill("dev:coder");
    await form.getByRole("button", { name: "Create team" }).click();
    const row = page.locator(`tr[data-team="${teamName}"]`);
    await row.locator(".state-running", { hasText: "running" }).waitFor({ timeout: bootTimeout });
    await shot("12-teams.png");
  });
  const col = (status) => page.locator(`section.kanban-col[data-status="${status}"]`);
  const card = (status, id) => col(status).locator(`article[data-task="${id}"]`);
  await step("teams: members and new tasks on the board", async () => {
    await page.locator(`tr[data-team="${teamName}"] a`).click();
    await page.getByRole("heading", { name: new RegExp(`/ ${teamName}$`) }).waitFor();
    const member = page.locator('tr[data-member="dev"]');
    await member.getByRole("link", { name: `${teamName}-dev` }).waitFor();
    await member.locator(".state-running").waitFor();
    const form = page.getByRole("form", { name: "new task" });
    const add = async (id, title, deps) => {
      await form.getByLabel("task id").fill(id);
      await form.getByLabel("task title").fill(title);
      await form.getByLabel("task owner").selectOption("dev");
      await form.getByLabel("depends on").fill(deps);
      await form.getByRole("button", { name: "Add task" }).click();
      await card("todo", id).waitFor();
    };
    await add("design", "Design the parser", "");
    await add("build", "Build the parser", "design");
    await card("todo", "build").getByText("waiting on design").waitFor();
    await waitOnDisk(`teams/${teamName}/tasks/INDEX.md`, ["| [[design]] | todo | dev |", "| [[build]] | todo | dev | design |"]);
    await shot("17-kanban.png");
  });
  await step("kanban: drag a task to another column", async () => {
    await card("todo", "design").dragTo(col("in_progress"));
    await card("in_progress", "design").waitFor();
    await page.getByTestId("kanban-status").filter({ hasText: "moved design from todo to in progress" }).waitFor();
    const note = await waitOnDisk(`teams/${teamName}/tasks/design.md`, ["status: in_progress"]);
    if (!note.includes("# Design the parser") || !note.includes("owner: dev")) throw new Error(`the moved note lost its text:\n${note}`);
    await waitOnDisk(`teams/${teamName}/tasks/INDEX.md`, ["| [[design]] | in_progress | dev |"]);
    // The live updates bring the board back as it is on disk.
    await page.waitForTimeout(1500);
    await card("in_progress", "design").waitFor();
    await shot("18-kanban-dragged.png");
  });
  await step("kanban: the status menu and the arrow keys move too", async () => {
    await card("todo", "build").getByLabel("status of build").selectOption("review");
    await card("review", "build").waitFor();
    await waitOnDisk(`teams/${teamName}/tasks/build.md`, ["status: review"]);
    await card("in_progress", "design").focus();
    await page.keyboard.press("ArrowRight");
    await card("blocked", "design").waitFor();
    await waitOnDisk(`teams/${teamName}/tasks/INDEX.md`, ["| [[design]] | blocked | dev |", "| [[build]] | review | dev | design |"]);
  });
  await step("kanban: a move made with the CLI shows up live", async () => {
    const cli = (...args) => execFileSync(cliBin, [...args, "--socket", apiSocket], { encoding: "utf8" });
    const moved = cli("task", "move", teamName, "build", "done");
    if (!moved.includes("build is now done")) throw new Error(`agentiso task move: ${moved}`);
    await card("done", "build").waitFor({ timeout: 10_000 });
    const list = cli("task", "list", teamName);
    if (!/done\s+build\s+Build the parser/.test(list)) throw new Error(`agentiso task list:\n${list}`);
    await waitOnDisk(`teams/${teamName}/tasks/INDEX.md`, ["| [[build]] | done | dev | design |"]);
  });
  await step("teams: message every member as the operator", async () => {
    const form = page.getByRole("form", { name: "send message" });
    await form.getByLabel("recipient").selectOption("*");
    await form.getByLabel("message").fill("status report please");
    await form.getByRole("button", { name: "Send" }).click();
    await page.getByTestId("message-status").filter({ hasText: "sent to dev" }).waitFor();
    const msg = page.getByRole("list", { name: "messages" }).locator("li", { hasText: "status report please" });
    await msg.waitFor();
    if (!(await msg.textContent()).includes("operator")) throw new Error(`message ${await msg.textContent()}`);
    await shot("19-team-messages.png");
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
