import { afterEach, describe, expect, it } from "vitest";
import { cleanup, render } from "@testing-library/react";
import { useStore } from "../store";
import type { HostStats } from "../types";
import { Host } from "./Host";

afterEach(() => {
  cleanup();
  useStore.getState().setSession(null);
});

const sample = (pool?: HostStats["pool"]): HostStats => ({
  time: "2026-01-01T00:00:00Z",
  vms_running: 1,
  vms_total: 2,
  max_total_vms: 10,
  vm_memory_mb: 256,
  memory_total_bytes: 8 << 30,
  memory_available_bytes: 4 << 30,
  disk_total_bytes: 100 << 30,
  disk_free_bytes: 50 << 30,
  load1: 0.5,
  pool,
});

describe("Host", () => {
  it("shows the warm pool when the daemon has one", () => {
    useStore.getState().addHost(sample({ ready: 2, target: 3 }));
    const { getByText } = render(<Host />);
    expect(getByText("2 ready of 3")).toBeTruthy();
  });
  it("says the pool is off when the daemon has none", () => {
    useStore.getState().addHost(sample());
    const { getByText } = render(<Host />);
    expect(getByText(/off on this daemon/)).toBeTruthy();
  });
});
