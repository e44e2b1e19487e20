import { useQuery } from "@tanstack/react-query";
import { useRef, useState } from "react";
import { api, execStream, errorText } from "../api";
import { actions } from "../actions";
import { bytes, duration, since } from "../format";
import { useStore } from "../store";
import type { Workspace } from "../types";
import { ConfirmButton } from "./Confirm";
import { Network } from "./Network";
import { Snapshots } from "./Snapshots";
import { Terminal } from "./Terminal";
import { useNow } from "./useNow";

type Tab = "terminal" | "exec" | "files" | "logs" | "snapshots" | "network";

/** One workspace: its facts, actions, terminals, exec, files and logs. */
export function WorkspaceDetail({ id }: { id: string }) {
  const fromList = useStore((s) => s.workspaces.find((w) => w.workspace_id === id || w.name === id));
  const features = useStore((s) => s.features);
  const info = useQuery({
    queryKey: ["workspace", id],
    queryFn: () => api<Workspace>("GET", `workspaces/${encodeURIComponent(id)}`),
    retry: false,
  });
  const w = fromList ?? info.data;
  const [tab, setTab] = useState<Tab>("terminal");
  const [error, setError] = useState("");
  const now = useNow();

  if (!w) {
    return <p className={info.isError ? "error" : "muted"}>{info.isError ? (info.error as Error).message : "Loading…"}</p>;
  }
  const act = async (f: () => Promise<unknown>) => {
    setError("");
    try {
      await f();
      info.refetch();
    } catch (e) {
      setError(errorText(e));
    }
  };
  const running = w.state === "running";
  return (
    <section>
      <header className="page-head">
        <h2>
          <a href="#/workspaces">Workspaces</a> / {w.name}
        </h2>
        <span className={`state state-${w.state}`}>{w.state}</span>
        <span className="spacer" />
        {running ? <button onClick={() => act(() => actions.stop(w.workspace_id))}>Stop</button> : <button onClick={() => act(() => actions.start(w.workspace_id))}>Start</button>}
        <ConfirmButton
          label="Destroy"
          danger
          question={`Destroy ${w.name} and its disk?`}
          onConfirm={() => act(async () => {
            await actions.destroy(w.workspace_id);
            location.hash = "#/workspaces";
          })}
        />
      </header>
      {error && <p className="error" role="alert">{error}</p>}
      <dl className="facts">
        <dt>ID</dt>
        <dd className="mono">{w.workspace_id}</dd>
        <dt>IP</dt>
        <dd>{w.ip || "—"}</dd>
        <dt>Resources</dt>
        <dd>
          {w.resources.vcpus} vCPU, {w.resources.memory_mb} MiB, {w.resources.disk_gb} GiB ({bytes(w.disk_used_bytes)} used)
        </dd>
        <dt>Uptime</dt>
        <dd>{running ? duration(since(w.started_at, now)) : "—"}</dd>
        <dt>Boot</dt>
        <dd>{w.boot_time_ms} ms{w.from_pool ? " (warm pool)" : ""}</dd>
        <dt>Image</dt>
        <dd>{w.base_image}</dd>
        <dt>Lineage</dt>
        <dd>{w.forked_from ? `forked from ${w.forked_from.source_workspace_id} @ ${w.forked_from.snapshot_name}` : "original"}</dd>
        {w.last_error && (
          <>
            <dt>Last error</dt>
            <dd className="error">{w.last_error}</dd>
          </>
        )}
      </dl>
      <nav className="tabs" role="tablist">
        {(["terminal", "exec", "files", "logs", "snapshots", "network"] as Tab[]).map((t) => (
          <button key={t} role="tab" aria-selected={tab === t} className={tab === t ? "active" : ""} onClick={() => setTab(t)}>
            {t}
          </button>
        ))}
      </nav>
      <div className="tab-body">
        {tab === "terminal" && (running ? <Terminals id={w.workspace_id} /> : <p className="muted">Start the workspace to open a terminal.</p>)}
        {tab === "exec" && <Exec id={w.workspace_id} running={running} />}
        {tab === "files" && <Files id={w.workspace_id} running={running} />}
        {tab === "logs" && <Logs id={w.workspace_id} />}
        {tab === "snapshots" &&
          (features?.snapshots ? <Snapshots id={w.workspace_id} running={running} onChange={() => info.refetch()} /> : <Unavailable what="Snapshots and forks" />)}
        {tab === "network" &&
          (features?.network ? (
            <Network w={w} onChange={() => info.refetch()} />
          ) : (
            <div>
              <p>
                Internet: {w.network.allow_internet ? "allowed" : "off"} · between VMs: {w.network.allow_inter_vm ? "allowed" : "off"} · ports:{" "}
                {w.network.allowed_ports.length ? w.network.allowed_ports.join(", ") : "none"}
              </p>
              <p className="muted">Workspace networking is off on this daemon ([network] enabled = false): no port forwards or policy to change.</p>
            </div>
          ))}
      </div>
    </section>
  );
}

export function Unavailable({ what }: { what: string }) {
  return <p className="muted">{what}: not enabled on this daemon.</p>;
}

/** Several terminal tabs into one workspace. */
function Terminals({ id }: { id: string }) {
  const next = useRef(2);
  const [tabs, setTabs] = useState<number[]>([1]);
  const [active, setActive] = useState(1);
  return (
    <div>
      <div className="term-tabs" role="tablist" aria-label="terminals">
        {tabs.map((t) => (
          <span key={t} className={t === active ? "term-tab active" : "term-tab"}>
            <button role="tab" aria-selected={t === active} onClick={() => setActive(t)}>
              shell {t}
            </button>
            <button
              aria-label={`close shell ${t}`}
              onClick={() => {
                const rest = tabs.filter((x) => x !== t);
                setTabs(rest);
                if (active === t && rest.length) setActive(rest[rest.length - 1]);
              }}
            >
              ×
            </button>
          </span>
        ))}
        <button
          onClick={() => {
            const n = next.current++;
            setTabs([...tabs, n]);
            setActive(n);
          }}
        >
          + New terminal
        </button>
      </div>
      {tabs.map((t) => (
        <Terminal key={t} workspace={id} visible={t === active} />
      ))}
    </div>
  );
}

/** Runs a command with its output streamed live. */
function Exec({ id, running }: { id: string; running: boolean }) {
  const [command, setCommand] = useState("");
  const [out, setOut] = useState<{ stream: string; data: string }[]>([]);
  const [status, setStatus] = useState("");
  const [busy, setBusy] = useState(false);
  const abort = useRef<AbortController | null>(null);
  const run = async (e: React.FormEvent) => {
    e.preventDefault();
    setOut([]);
    setStatus("running");
    setBusy(true);
    abort.current = new AbortController();
    try {
      await execStream(
        id,
        command,
        (ev) => {
          if (ev.type === "output") setOut((o) => [...o, { stream: ev.stream, data: ev.data }]);
          if (ev.type === "exit") setStatus(`exit ${ev.result.exit_code} in ${ev.result.duration_ms} ms${ev.result.truncated ? " (truncated)" : ""}`);
          if (ev.type === "error") setStatus(`error: ${ev.message}`);
        },
        abort.current.signal,
      );
    } catch (err) {
      setStatus(`error: ${errorText(err)}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div>
      <form className="row" onSubmit={run} aria-label="exec">
        <input className="grow mono" placeholder="command, run with /bin/sh -c" aria-label="command" value={command} onChange={(e) => setCommand(e.target.value)} disabled={!running} />
        <button type="submit" disabled={!running || busy || !command}>
          Run
        </button>
        {busy && (
          <button type="button" onClick={() => abort.current?.abort()}>
            Cancel
          </button>
        )}
      </form>
      {status && <p className="small" data-testid="exec-status">{status}</p>}
      <pre className="output" data-testid="exec-output">
        {out.map((o, i) => (
          <span key={i} className={o.stream}>
            {o.data}
          </span>
        ))}
      </pre>
    </div>
  );
}

/** Reads and writes a text file. */
function Files({ id, running }: { id: string; running: boolean }) {
  const [path, setPath] = useState("/root/notes.txt");
  const [content, setContent] = useState("");
  const [status, setStatus] = useState("");
  const call = async (f: () => Promise<string>) => {
    try {
      setStatus(await f());
    } catch (e) {
      setStatus(`error: ${errorText(e)}`);
    }
  };
  const q = `workspaces/${encodeURIComponent(id)}/files`;
  return (
    <div>
      <div className="row">
        <input className="grow mono" aria-label="path" value={path} onChange={(e) => setPath(e.target.value)} />
        <button disabled={!running} onClick={() => call(async () => {
          const f = await api<{ content: string; size: number }>("GET", `${q}?path=${encodeURIComponent(path)}`);
          setContent(f.content);
          return `read ${f.size} bytes`;
        })}>
          Open
        </button>
        <button disabled={!running} onClick={() => call(async () => {
          await api("PUT", q, { path, content });
          return "saved";
        })}>
          Save
        </button>
      </div>
      {status && <p className="small">{status}</p>}
      <textarea className="editor mono" aria-label="file content" value={content} onChange={(e) => setContent(e.target.value)} rows={16} />
    </div>
  );
}

/** The console log and QEMU's stderr, sanitised by the daemon. */
function Logs({ id }: { id: string }) {
  const logs = useQuery({
    queryKey: ["logs", id],
    queryFn: () => api<{ console?: string; stderr?: string }>("GET", `workspaces/${encodeURIComponent(id)}/logs?type=all&lines=300`),
    refetchInterval: 5000,
  });
  return (
    <div>
      <h3>Console</h3>
      <pre className="output" data-testid="console-log">{logs.data?.console || "(empty)"}</pre>
      <h3>QEMU stderr</h3>
      <pre className="output">{logs.data?.stderr || "(empty)"}</pre>
    </div>
  );
}
