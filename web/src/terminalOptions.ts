import type { ITerminalOptions } from "@xterm/xterm";

/**
 * The options of every terminal. A workspace's programs write whatever
 * bytes they like to the terminal, so nothing that lets terminal output
 * reach beyond it is enabled (finding M-14): no proposed APIs, no window
 * manipulation reports, no clipboard or link handling beyond xterm's safe
 * defaults.
 */
export const terminalOptions: ITerminalOptions = {
  allowProposedApi: false,
  windowOptions: {},
  cursorBlink: true,
  convertEol: false,
  scrollback: 5000,
  fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
  fontSize: 13,
  theme: { background: "#0f1419", foreground: "#e6e1cf" },
};
