// The task board's move logic, apart from the DOM: which column a task is
// in, where a keyboard move takes it, whether a drop is a move at all, and
// the board as it looks while a move is on its way to the daemon.
import type { Board, Task } from "./types";

/** A column of the kanban: one status and its tasks, by id. */
export interface Column {
  status: string;
  tasks: Task[];
}

/** The board's columns in its statuses' order; invalid notes are left out (see invalidTasks). */
export function columns(board: Board): Column[] {
  return board.statuses.map((status) => ({
    status,
    tasks: board.tasks.filter((t) => !t.invalid && t.status === status).sort((a, b) => a.id.localeCompare(b.id)),
  }));
}

/** Notes under the board's folder that are not valid tasks. */
export function invalidTasks(board: Board): Task[] {
  return board.tasks.filter((t) => t.invalid || !board.statuses.includes(t.status));
}

/**
 * The move a drop or a choice asks for, or null when there is none to make:
 * an unknown task or status, an invalid note, or the column it is in.
 */
export function moveFor(board: Board, taskId: string, status: string): { task: string; from: string; to: string } | null {
  const t = board.tasks.find((x) => x.id === taskId);
  if (!t || t.invalid || !board.statuses.includes(status) || t.status === status) return null;
  return { task: t.id, from: t.status, to: status };
}

/** The status a keyboard move (-1 left, +1 right) takes a task to, or null at the board's edge. */
export function neighbour(board: Board, status: string, step: -1 | 1): string | null {
  const i = board.statuses.indexOf(status);
  if (i < 0) return null;
  return board.statuses[i + step] ?? null;
}

/** The board with one task in its new column, shown until the daemon answers. */
export function withMove(board: Board, taskId: string, status: string): Board {
  return { ...board, tasks: board.tasks.map((t) => (t.id === taskId ? { ...t, status } : t)) };
}

/** The dependencies of a task that are not done yet (missing ones count). */
export function waitingOn(board: Board, task: Task): string[] {
  return task.depends_on.filter((d) => board.tasks.find((t) => t.id === d)?.status !== "done");
}

/** The data type a dragged card carries. */
export const DRAG_TYPE = "application/x-agentiso-task";
