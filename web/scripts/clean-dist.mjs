// Removes the previous build from the embedded directory, keeping its
// committed placeholder.
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const dist = new URL("../../internal/dashboard/dist/", import.meta.url).pathname;
for (const name of readdirSync(dist)) {
  if (name !== "PLACEHOLDER.md") rmSync(join(dist, name), { recursive: true, force: true });
}
