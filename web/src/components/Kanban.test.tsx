import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, waitFor } from "@testing-library/react";
import { setCsrfToken } from "../api";
import { DRAG_TYPE } from "../kanban";
import type { Board, Task } from "../types";
import { Kanban } from "./Kanban";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const task = (id: string, status: string): Task => ({ id, path: `teams/t/tasks/${id}.md`, title: id, status, owner: "", depends_on: [], modified: "" });
const board: Board = { team: "t", statuses: ["todo", "in_progress", "blocked", "review", "done"], tasks: [task("design", "todo")] };
const col = (c: HTMLElement, status: string) => c.querySelector(`section[data-status="${status}"]`) as HTMLElement;
const drop = (el: HTMLElement, id: string) => {
  const dataTransfer = { types: [DRAG_TYPE], getData: (t: string) => (t === DRAG_TYPE ? id : ""), dropEffect: "" };
  fireEvent.dragOver(el, { dataTransfer });
  fireEvent.drop(el, { dataTransfer });
};

describe("Kanban", () => {
  it("sends a drop on another column as a move, with the CSRF token, and shows the card there", async () => {
    setCsrfToken("csrf-1");
    const f = vi.fn(async () => new Response(JSON.stringify(task("design", "review")), { status: 200 }));
    vi.stubGlobal("fetch", f);
    const { container, findByText } = render(<Kanban team="t" board={board} members={[]} />);
    drop(col(container, "review"), "design");
    expect(col(container, "review").querySelector('[data-task="design"]')).not.toBeNull();
    await findByText("moved design from todo to review");
    const [url, init] = f.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/v1/teams/t/tasks/design/move");
    expect(init.method).toBe("POST");
    expect(JSON.parse(init.body as string)).toEqual({ status: "review" });
    expect((init.headers as Record<string, string>)["X-CSRF-Token"]).toBe("csrf-1");
  });

  it("sends nothing for a drop on the card's own column", () => {
    const f = vi.fn();
    vi.stubGlobal("fetch", f);
    const { container } = render(<Kanban team="t" board={board} members={[]} />);
    drop(col(container, "todo"), "design");
    expect(f).not.toHaveBeenCalled();
  });

  it("puts the card back and shows the daemon's refusal", async () => {
    vi.stubGlobal("fetch", async () => new Response(JSON.stringify({ error: { class: "invalid", message: "content: depends_on makes a cycle: a -> a" } }), { status: 400 }));
    const { container, findByRole } = render(<Kanban team="t" board={board} members={[]} />);
    drop(col(container, "done"), "design");
    expect((await findByRole("alert")).textContent).toContain("cycle");
    await waitFor(() => expect(col(container, "todo").querySelector('[data-task="design"]')).not.toBeNull());
  });

  it("moves with the status menu and the arrow keys", async () => {
    const f = vi.fn(async () => new Response("{}", { status: 200 }));
    vi.stubGlobal("fetch", f);
    const { getByLabelText } = render(<Kanban team="t" board={board} members={[]} />);
    fireEvent.change(getByLabelText("status of design"), { target: { value: "blocked" } });
    await waitFor(() => expect(f).toHaveBeenCalledTimes(1));
    cleanup();
    const r = render(<Kanban team="t" board={board} members={[]} />);
    fireEvent.keyDown(r.container.querySelector('[data-task="design"]') as HTMLElement, { key: "ArrowRight" });
    await waitFor(() => expect(f).toHaveBeenCalledTimes(2));
    expect(JSON.parse((f.mock.calls[0] as unknown as [string, RequestInit])[1].body as string)).toEqual({ status: "blocked" });
    expect(JSON.parse((f.mock.calls[1] as unknown as [string, RequestInit])[1].body as string)).toEqual({ status: "in_progress" });
  });
});
