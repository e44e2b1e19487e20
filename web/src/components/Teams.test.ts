import { describe, expect, it } from "vitest";
import type { Team } from "../types";
import { parsePorts } from "./Network";
import { parseRoles, teamTree } from "./Teams";

const team = (name: string, parent: string | undefined, subs: string[]): Team => ({
  name,
  state: "ready",
  parent_team: parent,
  sub_teams: subs,
  max_vms: 10,
  used_vms: 1,
  members: [],
  created_at: "2026-01-01T00:00:00Z",
});

describe("teamTree", () => {
  it("puts sub-teams under their parent, depth first", () => {
    const got = teamTree([team("z", undefined, []), team("sub2", "a", []), team("a", undefined, ["sub2", "sub1"]), team("sub1", "a", ["deep"]), team("deep", "sub1", [])]);
    expect(got.map(({ t, depth }) => `${t.name}${depth}`)).toEqual(["a0", "sub11", "deep2", "sub21", "z0"]);
  });
});

describe("parseRoles", () => {
  it("reads name:role pairs, role defaulting to agent", () => {
    expect(parseRoles(" dev:coder, rev , ")).toEqual([
      { name: "dev", role: "coder" },
      { name: "rev", role: "agent" },
    ]);
  });
});

describe("parsePorts", () => {
  it("reads ports separated by commas or spaces", () => {
    expect(parsePorts("22, 8080 9000")).toEqual([22, 8080, 9000]);
    expect(parsePorts("")).toEqual([]);
  });
  it("names a word that is not a port", () => {
    expect(() => parsePorts("22, http")).toThrow("allowed_ports: http is not a port");
    expect(() => parsePorts("70000")).toThrow("70000");
  });
});
