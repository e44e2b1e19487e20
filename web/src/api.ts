// The one way the front end talks to the daemon: same-origin fetch with the
// session cookie (sent by the browser, never readable here: it is HttpOnly)
// and, on every state change, the login's CSRF token in a header.

export const CSRF_HEADER = "X-CSRF-Token";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly errorClass: string,
    message: string,
  ) {
    super(message);
  }
}

/** The text to show for a failed call: the API's message, or the error's. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

let csrfToken = "";

export function setCsrfToken(t: string) {
  csrfToken = t;
}

const safe = new Set(["GET", "HEAD"]);

/** Calls the API and returns its JSON answer; an error answer throws ApiError. */
export async function api<T>(method: string, path: string, body?: unknown, init?: RequestInit): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (!safe.has(method)) headers[CSRF_HEADER] = csrfToken;
  const res = await fetch(`/api/v1/${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    ...init,
  });
  return answer<T>(res);
}

async function answer<T>(res: Response): Promise<T> {
  const text = await res.text();
  let data: unknown = undefined;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON: handled below */
  }
  if (!res.ok) {
    const e = (data as { error?: { class?: string; message?: string } } | undefined)?.error;
    throw new ApiError(res.status, e?.class ?? "internal", e?.message ?? `HTTP ${res.status}`);
  }
  return data as T;
}

export type ExecEvent =
  | { type: "output"; stream: "stdout" | "stderr"; data: string }
  | { type: "exit"; result: import("./types").ExecResult }
  | { type: "error"; errorClass: string; message: string };

/**
 * Runs a command and hands its output to onEvent as it arrives (server-sent
 * events over a POST, read from the response body).
 */
export async function execStream(
  workspace: string,
  command: string,
  onEvent: (e: ExecEvent) => void,
  signal?: AbortSignal,
): Promise<void> {
  const res = await fetch(`/api/v1/workspaces/${encodeURIComponent(workspace)}/exec`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream", [CSRF_HEADER]: csrfToken },
    body: JSON.stringify({ command }),
    credentials: "same-origin",
    signal,
  });
  if (!res.ok || !res.body) {
    await answer(res);
    return;
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const e = parseEvent(buf.slice(0, i));
      buf = buf.slice(i + 2);
      if (e) onEvent(e);
    }
  }
}

/** Parses one server-sent event block. */
export function parseEvent(block: string): ExecEvent | null {
  let event = "";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) event = line.slice(7);
    else if (line.startsWith("data: ")) data.push(line.slice(6));
  }
  if (!event || data.length === 0) return null;
  const v = JSON.parse(data.join("\n"));
  switch (event) {
    case "output":
      return { type: "output", stream: v.stream, data: v.data };
    case "exit":
      return { type: "exit", result: v };
    case "error":
      return { type: "error", errorClass: v.class, message: v.message };
  }
  return null;
}

/** The WebSocket URL of an API path on this page's own origin. */
export function wsURL(path: string): string {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}/api/v1/${path}`;
}
