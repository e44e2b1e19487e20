import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, waitFor } from "@testing-library/react";
import { Login } from "./Login";
import { useStore } from "../store";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  useStore.getState().setSession(null);
});

describe("Login", () => {
  it("exchanges the token and stores the session (not the token)", async () => {
    const f = vi.fn(async () => new Response(JSON.stringify({ logged_in: true, session_id: "s", csrf_token: "c", expires_at: "" }), { status: 200 }));
    vi.stubGlobal("fetch", f);
    const { getByLabelText, getByRole } = render(<Login />);
    fireEvent.change(getByLabelText("Admin token"), { target: { value: "the-admin-token-123" } });
    fireEvent.click(getByRole("button", { name: "Log in" }));
    await waitFor(() => expect(useStore.getState().session?.session_id).toBe("s"));
    const [url, init] = f.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/v1/login");
    expect(JSON.parse(init.body as string)).toEqual({ token: "the-admin-token-123" });
    expect(JSON.stringify(useStore.getState())).not.toContain("the-admin-token-123");
  });

  it("shows the daemon's refusal", async () => {
    vi.stubGlobal("fetch", async () => new Response(JSON.stringify({ error: { class: "permission_denied", message: "token: not the admin token" } }), { status: 403 }));
    const { getByLabelText, getByRole, findByRole } = render(<Login />);
    fireEvent.change(getByLabelText("Admin token"), { target: { value: "wrong" } });
    fireEvent.click(getByRole("button", { name: "Log in" }));
    expect((await findByRole("alert")).textContent).toContain("not the admin token");
  });
});
