import { describe, expect, it } from "vitest";
import type { Snapshot } from "../types";
import { treeOrder } from "./Snapshots";

const snap = (name: string, parent: string | null): Snapshot => ({
  snapshot_id: `id-${name}`,
  name,
  workspace_id: "w",
  has_memory: false,
  created_at: "2026-01-01T00:00:00Z",
  parent,
  disk_bytes: 0,
  memory_bytes: 0,
  forks: 0,
});

describe("treeOrder", () => {
  it("puts each snapshot under its parent, depth first", () => {
    const got = treeOrder([snap("a", null), snap("b", "a"), snap("c", "a"), snap("d", "b")]);
    expect(got.map(({ s, depth }) => `${s.name}${depth}`)).toEqual(["a0", "b1", "d2", "c1"]);
  });
  it("keeps a snapshot whose parent is gone as a root", () => {
    const got = treeOrder([snap("x", "deleted"), snap("y", "x")]);
    expect(got.map(({ s, depth }) => `${s.name}${depth}`)).toEqual(["x0", "y1"]);
  });
});
