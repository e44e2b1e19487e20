import { useState } from "react";
import { errorText } from "../api";
import { useSubmit } from "../useSubmit";
import { actions } from "../actions";
import { bytes, duration, since } from "../format";
import { useStore } from "../store";
import type { Workspace } from "../types";
import { ConfirmButton } from "./Confirm";
import { useNow } from "./useNow";

/** The workspace list with live state, and the create form. */
export function Workspaces() {
  const workspaces = useStore((s) => s.workspaces);
  const live = useStore((s) => s.live);
  const now = useNow();
  const [error, setError] = useState("");
  const [busy, setBusy] = useState<Record<string, string>>({});

  const run = async (id: string, what: string, f: () => Promise<unknown>) => {
    setError("");
    setBusy((b) => ({ ...b, [id]: what }));
    try {
      await f();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy((b) => {
        const { [id]: _, ...rest } = b;
        return rest;
      });
    }
  };

  return (
    <section>
      <header className="page-head">
        <h2>Workspaces</h2>
        <span className={live ? "pill ok" : "pill"} title="live updates">
          {live ? "live" : "reconnecting"}
        </span>
      </header>
      <CreateForm onError={setError} />
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <table className="list" aria-label="workspaces">
        <thead>
          <tr>
            <th>Name</th>
            <th>State</th>
            <th>IP</th>
            <th>vCPU / memory / disk</th>
            <th>Disk used</th>
            <th>Uptime</th>
            <th>Owner</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {workspaces.length === 0 && (
            <tr>
              <td colSpan={8} className="muted">
                No workspaces yet.
              </td>
            </tr>
          )}
          {workspaces.map((w) => (
            <Row key={w.workspace_id} w={w} now={now} busy={busy[w.workspace_id]} run={run} />
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Row({ w, now, busy, run }: { w: Workspace; now: number; busy?: string; run: (id: string, what: string, f: () => Promise<unknown>) => void }) {
  const id = w.workspace_id;
  return (
    <tr data-workspace={w.name}>
      <td>
        <a href={`#/workspaces/${encodeURIComponent(id)}`}>{w.name}</a>
        {w.forked_from && <span className="muted small"> fork</span>}
      </td>
      <td>
        <span className={`state state-${w.state}`}>{busy ? `${busy}…` : w.state}</span>
        {w.last_error && <div className="small error">{w.last_error}</div>}
      </td>
      <td>{w.ip || "—"}</td>
      <td>
        {w.resources.vcpus} / {w.resources.memory_mb} MiB / {w.resources.disk_gb} GiB
      </td>
      <td>{bytes(w.disk_used_bytes)}</td>
      <td>{w.state === "running" ? duration(since(w.started_at, now)) : "—"}</td>
      <td className="small">{w.owned ? "this login" : (w.owner_session ?? "").slice(0, 8)}</td>
      <td className="actions">
        {w.state === "running" ? (
          <button disabled={!!busy} onClick={() => run(id, "stopping", () => actions.stop(id))}>
            Stop
          </button>
        ) : (
          <button disabled={!!busy || w.state === "creating"} onClick={() => run(id, "starting", () => actions.start(id))}>
            Start
          </button>
        )}
        <ConfirmButton
          label="Destroy"
          danger
          disabled={!!busy}
          question={`Destroy ${w.name} and its disk?`}
          onConfirm={() => run(id, "destroying", () => actions.destroy(id))}
        />
      </td>
    </tr>
  );
}

function CreateForm({ onError }: { onError: (e: string) => void }) {
  const [name, setName] = useState("");
  const [memory, setMemory] = useState("");
  const [vcpus, setVcpus] = useState("");
  const { busy, submit: form } = useSubmit(onError);
  const submit = form(async () => {
    await actions.create({
      name: name || undefined,
      memory_mb: memory ? Number(memory) : undefined,
      vcpus: vcpus ? Number(vcpus) : undefined,
    });
    setName("");
  });
  return (
    <form className="create" onSubmit={submit} aria-label="create workspace">
      <input placeholder="name (optional)" aria-label="name" value={name} onChange={(e) => setName(e.target.value)} />
      <input placeholder="memory MiB" aria-label="memory_mb" inputMode="numeric" value={memory} onChange={(e) => setMemory(e.target.value)} />
      <input placeholder="vCPUs" aria-label="vcpus" inputMode="numeric" value={vcpus} onChange={(e) => setVcpus(e.target.value)} />
      <button type="submit" disabled={busy}>
        {busy ? "Creating…" : "Create workspace"}
      </button>
    </form>
  );
}
