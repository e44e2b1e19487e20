import { afterEach, describe, expect, it, vi } from "vitest";
import { api, ApiError, CSRF_HEADER, parseEvent, setCsrfToken } from "./api";

function mockFetch(status: number, body: unknown) {
  const f = vi.fn(async () => new Response(JSON.stringify(body), { status }));
  vi.stubGlobal("fetch", f);
  return f;
}

afterEach(() => vi.unstubAllGlobals());

describe("api", () => {
  it("sends the CSRF token on state changes only", async () => {
    setCsrfToken("tok-123");
    const f = mockFetch(200, { ok: true });
    await api("POST", "workspaces", { name: "a" });
    await api("GET", "workspaces");
    const post = f.mock.calls[0] as unknown as [string, RequestInit];
    const get = f.mock.calls[1] as unknown as [string, RequestInit];
    expect(post[0]).toBe("/api/v1/workspaces");
    expect((post[1].headers as Record<string, string>)[CSRF_HEADER]).toBe("tok-123");
    expect(post[1].credentials).toBe("same-origin");
    expect((get[1].headers as Record<string, string>)[CSRF_HEADER]).toBeUndefined();
  });

  it("turns an error answer into an ApiError with its class and message", async () => {
    mockFetch(404, { error: { class: "not_found", message: "workspace_id: no such workspace in this session" } });
    const err = (await api("GET", "workspaces/x").catch((e: unknown) => e)) as ApiError;
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(404);
    expect(err.errorClass).toBe("not_found");
    expect(err.message).toContain("no such workspace");
  });
});

describe("parseEvent", () => {
  it("reads output, exit and error events", () => {
    expect(parseEvent('event: output\ndata: {"stream":"stdout","data":"hi\\n"}')).toEqual({ type: "output", stream: "stdout", data: "hi\n" });
    expect(parseEvent('event: exit\ndata: {"exit_code":3}')).toEqual({ type: "exit", result: { exit_code: 3 } });
    expect(parseEvent('event: error\ndata: {"class":"conflict","message":"m"}')).toEqual({ type: "error", errorClass: "conflict", message: "m" });
    expect(parseEvent(": comment")).toBeNull();
  });
});
