import { wsURL } from "./api";
import { useStore } from "./store";
import type { HostStats, Team, Workspace } from "./types";

interface Event {
  type: "workspaces" | "teams" | "host";
  workspaces?: Workspace[];
  teams?: Team[];
  host?: HostStats;
}

/**
 * Keeps the one live-updates WebSocket open while logged in, reconnecting
 * with a growing delay. Returns a function that closes it for good.
 */
export function connectEvents(): () => void {
  let ws: WebSocket | null = null;
  let stopped = false;
  let delay = 500;
  let timer: number | undefined;

  const open = () => {
    if (stopped) return;
    ws = new WebSocket(wsURL("events"));
    ws.onopen = () => {
      delay = 500;
      useStore.getState().setLive(true);
    };
    ws.onmessage = (m) => {
      const e = JSON.parse(m.data as string) as Event;
      const st = useStore.getState();
      if (e.type === "workspaces" && e.workspaces) st.setWorkspaces(e.workspaces);
      if (e.type === "teams" && e.teams) st.setTeams(e.teams);
      if (e.type === "host" && e.host) st.addHost(e.host);
    };
    ws.onclose = () => {
      useStore.getState().setLive(false);
      if (stopped) return;
      timer = window.setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
  };
  open();
  return () => {
    stopped = true;
    window.clearTimeout(timer);
    ws?.close();
  };
}
