// Drives the dashboard's network tab in Debian's headless Chromium against
// a real daemon with workspace networking on (run inside the daemon's own
// network namespace, where its dashboard listens): log in, create a
// workspace, add a port forward, change the network policy, remove the
// forward. A screenshot of each screen goes to ARTIFACTS_DIR. Run by
// test/e2e's TestDashboardNetworkInBrowser.
//
// Env: DASHBOARD_URL, DASHBOARD_TOKEN, ARTIFACTS_DIR, CHROMIUM (default
// /usr/bin/chromium), WORKSPACE (default net-ws).
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const url = process.env.DASHBOARD_URL;
const token = process.env.DASHBOARD_TOKEN;
const out = process.env.ARTIFACTS_DIR ?? "test-artifacts/dashboard-network";
const name = process.env.WORKSPACE ?? "net-ws";
if (!url || !token) {
  console.error("DASHBOARD_URL and DASHBOARD_TOKEN are required");
  process.exit(2);
}
mkdirSync(out, { recursive: true });

let failed = 0;
async function step(title, f) {
  const start = Date.now();
  try {
    await f();
    console.log(`ok   ${title} (${Date.now() - start} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${title}: ${e}`);
    throw e;
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await (await browser.newContext({ viewport: { width: 1360, height: 900 } })).newPage();
const problems = [];
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("console", (m) => {
  if (m.type() === "error") problems.push(`console: ${m.text()}`);
});
const shot = (file) => page.screenshot({ path: join(out, file), fullPage: true });

try {
  await step("log in", async () => {
    for (let i = 0; ; i++) {
      try {
        await page.goto(url);
        break;
      } catch (e) {
        if (i > 60) throw e;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    await page.getByLabel("Admin token").fill(token);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Workspaces" }).waitFor();
  });
  await step("create a workspace", async () => {
    const form = page.getByRole("form", { name: "create workspace" });
    await form.getByLabel("name").fill(name);
    await form.getByLabel("memory_mb").fill("256");
    await form.getByRole("button", { name: "Create workspace" }).click();
    await page.locator(`tr[data-workspace="${name}"] .state-running`).waitFor({ timeout: 240_000 });
    await page.locator(`tr[data-workspace="${name}"] a`).click();
    await page.getByRole("tab", { name: "network" }).click();
    await page.getByText("No port forwards.").waitFor();
    await shot("01-network.png");
  });
  await step("a bad port is refused, naming the field", async () => {
    const form = page.getByRole("form", { name: "add port forward" });
    await form.getByLabel("guest port").fill("70000");
    await form.getByRole("button", { name: "Add forward" }).click();
    await page.getByRole("alert").filter({ hasText: "guest_port: must be 1-65535" }).waitFor();
    await page.getByText("No port forwards.").waitFor();
  });
  await step("add a port forward", async () => {
    const form = page.getByRole("form", { name: "add port forward" });
    await form.getByLabel("guest port").fill("8080");
    await form.getByRole("button", { name: "Add forward" }).click();
    await page.getByTestId("network-status").filter({ hasText: "forwards to port 8080 of the workspace" }).waitFor();
    const row = page.locator('tr[data-forward="8080"]');
    await row.waitFor();
    const host = (await row.locator("td").first().textContent()).trim();
    if (!/^\d+$/.test(host) || Number(host) < 1024) throw new Error(`host port ${host}`);
    console.log(`     host port ${host} -> 8080`);
    await shot("02-port-forward.png");
  });
  await step("change the network policy", async () => {
    const form = page.getByRole("form", { name: "network policy" });
    await form.getByLabel(/Traffic with the owner's other workspaces/).check();
    await form.getByLabel("Inbound ports").fill("8080, 22");
    await form.getByRole("button", { name: "Apply policy" }).click();
    await page.getByTestId("network-status").filter({ hasText: "policy applied" }).waitFor();
    await shot("03-network-policy.png");
  });
  await step("remove the port forward", async () => {
    await page.getByRole("button", { name: "remove forward of port 8080" }).click();
    await page.getByTestId("network-status").filter({ hasText: "no longer forwarded" }).waitFor();
    await page.getByText("No port forwards.").waitFor();
    await shot("04-forward-removed.png");
  });
  await step("no unexpected console errors", async () => {
    // The refused port is the one expected error (a 400 answer).
    const unexpected = problems.filter((p) => !p.includes("status of 400"));
    if (unexpected.length) throw new Error(unexpected.join("\n"));
  });
} catch {
  await shot("failure.png").catch(() => undefined);
} finally {
  await browser.close();
}
console.log(failed ? "FAILED" : "passed");
process.exit(failed ? 1 : 0);
