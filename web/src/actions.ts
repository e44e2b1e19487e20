import { api } from "./api";
import type { Workspace } from "./types";

/** Workspace lifecycle actions, as the API names them. */
export const actions = {
  create: (req: { name?: string; vcpus?: number; memory_mb?: number; disk_gb?: number }) =>
    api<Workspace>("POST", "workspaces", req),
  start: (id: string) => api<Workspace>("POST", `workspaces/${encodeURIComponent(id)}/start`),
  stop: (id: string) => api<Workspace>("POST", `workspaces/${encodeURIComponent(id)}/stop`),
  destroy: (id: string) => api<unknown>("DELETE", `workspaces/${encodeURIComponent(id)}`),
};
