import { describe, expect, it } from "vitest";
import { terminalOptions } from "./terminalOptions";

// M-14: terminal output is untrusted; nothing beyond xterm's safe core is on.
describe("terminalOptions", () => {
  it("keeps proposed APIs and window reports off", () => {
    expect(terminalOptions.allowProposedApi).toBe(false);
    expect(terminalOptions.windowOptions).toEqual({});
  });
});
