import { useEffect, useRef, useState } from "react";
import { Terminal as XTerm } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import { wsURL } from "../api";
import { terminalOptions } from "../terminalOptions";

interface Props {
  workspace: string;
  /** Whether this tab is the one shown (a hidden terminal is not fitted). */
  visible: boolean;
}

/**
 * A shell in the workspace: xterm.js on a WebSocket that carries the
 * terminal's bytes both ways (binary messages) and resizes (JSON text).
 */
export function Terminal({ workspace, visible }: Props) {
  const el = useRef<HTMLDivElement>(null);
  const fitRef = useRef<FitAddon | null>(null);
  const [status, setStatus] = useState("connecting");

  useEffect(() => {
    const term = new XTerm(terminalOptions);
    const fit = new FitAddon();
    fitRef.current = fit;
    term.loadAddon(fit);
    term.open(el.current!);
    try {
      fit.fit();
    } catch {
      /* not laid out yet */
    }
    const ws = new WebSocket(wsURL(`workspaces/${encodeURIComponent(workspace)}/terminal?rows=${term.rows}&cols=${term.cols}`));
    ws.binaryType = "arraybuffer";
    const enc = new TextEncoder();
    ws.onopen = () => {
      setStatus("connected");
      term.focus();
    };
    ws.onmessage = (m) => {
      if (m.data instanceof ArrayBuffer) {
        term.write(new Uint8Array(m.data));
        return;
      }
      const ctl = JSON.parse(m.data as string) as { type: string; exit_code?: number; message?: string };
      if (ctl.type === "exit") setStatus(`exited (${ctl.exit_code ?? "?"})`);
      if (ctl.type === "error") setStatus(`error: ${ctl.message}`);
    };
    ws.onclose = (e) => setStatus((s) => (s.startsWith("exited") || s.startsWith("error") ? s : `closed${e.reason ? ": " + e.reason : ""}`));
    const data = term.onData((d) => ws.readyState === WebSocket.OPEN && ws.send(enc.encode(d)));
    const resize = term.onResize(({ rows, cols }) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "resize", rows, cols }));
    });
    const ro = new ResizeObserver(() => {
      try {
        fit.fit();
      } catch {
        /* hidden */
      }
    });
    ro.observe(el.current!);
    return () => {
      ro.disconnect();
      data.dispose();
      resize.dispose();
      ws.close();
      term.dispose();
    };
  }, [workspace]);

  useEffect(() => {
    if (visible) {
      try {
        fitRef.current?.fit();
      } catch {
        /* not laid out */
      }
    }
  }, [visible]);

  return (
    <div className="terminal-wrap" hidden={!visible}>
      <div className="terminal-status" data-testid="terminal-status">
        {status}
      </div>
      <div className="terminal" ref={el} data-testid="terminal" />
    </div>
  );
}
