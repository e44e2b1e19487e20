import { describe, expect, it } from "vitest";
import { columns, invalidTasks, moveFor, neighbour, waitingOn, withMove } from "./kanban";
import type { Board, Task } from "./types";

const task = (id: string, status: string, extra: Partial<Task> = {}): Task => ({
  id,
  path: `teams/t/tasks/${id}.md`,
  title: id,
  status,
  owner: "",
  depends_on: [],
  modified: "2026-01-01T00:00:00Z",
  ...extra,
});

const board = (...tasks: Task[]): Board => ({ team: "t", statuses: ["todo", "in_progress", "blocked", "review", "done"], tasks });

describe("columns", () => {
  it("puts every valid task in its status's column, columns in board order, tasks by id", () => {
    const b = board(task("b", "todo"), task("a", "todo"), task("c", "done"), task("bad", "", { invalid: "content: status must be one of …" }));
    const cols = columns(b);
    expect(cols.map((c) => c.status)).toEqual(b.statuses);
    expect(cols.map((c) => c.tasks.map((t) => t.id).join(","))).toEqual(["a,b", "", "", "", "c"]);
    expect(invalidTasks(b).map((t) => t.id)).toEqual(["bad"]);
  });
});

describe("moveFor", () => {
  const b = board(task("a", "todo"), task("bad", "", { invalid: "broken" }));
  it("is the move a drop on another column asks for", () => {
    expect(moveFor(b, "a", "review")).toEqual({ task: "a", from: "todo", to: "review" });
  });
  it("is nothing for a drop on the task's own column", () => {
    expect(moveFor(b, "a", "todo")).toBeNull();
  });
  it("is nothing for an unknown task, an unknown status or an invalid note", () => {
    expect(moveFor(b, "zzz", "done")).toBeNull();
    expect(moveFor(b, "a", "someday")).toBeNull();
    expect(moveFor(b, "bad", "done")).toBeNull();
  });
});

describe("neighbour", () => {
  const b = board();
  it("steps one column left or right", () => {
    expect(neighbour(b, "todo", 1)).toBe("in_progress");
    expect(neighbour(b, "review", -1)).toBe("blocked");
  });
  it("stops at the board's edges and at unknown statuses", () => {
    expect(neighbour(b, "todo", -1)).toBeNull();
    expect(neighbour(b, "done", 1)).toBeNull();
    expect(neighbour(b, "nope", 1)).toBeNull();
  });
});

describe("withMove", () => {
  it("shows the moved task in its new column and leaves the board it came from alone", () => {
    const b = board(task("a", "todo"), task("b", "todo"));
    const moved = withMove(b, "a", "done");
    expect(columns(moved)[4].tasks.map((t) => t.id)).toEqual(["a"]);
    expect(columns(moved)[0].tasks.map((t) => t.id)).toEqual(["b"]);
    expect(b.tasks[0].status).toBe("todo");
  });
});

describe("waitingOn", () => {
  it("lists dependencies not done, missing ones included", () => {
    const b = board(task("a", "done"), task("b", "review"), task("c", "todo", { depends_on: ["a", "b", "gone"] }));
    expect(waitingOn(b, b.tasks[2])).toEqual(["b", "gone"]);
  });
});
