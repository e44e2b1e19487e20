import { create } from "zustand";
import type { Features, HostStats, Session, Team, Workspace } from "./types";

/** How many host samples the charts keep (one every ~5 s: 10 minutes). */
export const HOST_HISTORY = 120;

interface State {
  session: Session | null;
  features: Features | null;
  workspaces: Workspace[];
  /** Every team with its members and task board; null until the first event. */
  teams: Team[] | null;
  /** Whether the live-updates socket is connected. */
  live: boolean;
  host: HostStats[];
  setSession: (s: Session | null) => void;
  setFeatures: (f: Features) => void;
  setWorkspaces: (w: Workspace[]) => void;
  setTeams: (t: Team[]) => void;
  setLive: (l: boolean) => void;
  addHost: (h: HostStats) => void;
}

export const useStore = create<State>((set) => ({
  session: null,
  features: null,
  workspaces: [],
  teams: null,
  live: false,
  host: [],
  setSession: (session) => set(session ? { session } : { session, workspaces: [], teams: null, host: [], live: false }),
  setFeatures: (features) => set({ features }),
  setWorkspaces: (workspaces) => set({ workspaces }),
  setTeams: (teams) => set({ teams }),
  setLive: (live) => set({ live }),
  addHost: (h) => set((s) => ({ host: [...s.host, h].slice(-HOST_HISTORY) })),
}));
