import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { api, errorText } from "../api";
import { bytes } from "../format";
import type { ForkResult, RestoreResult, Snapshot, SnapshotList } from "../types";
import { ConfirmButton } from "./Confirm";

/**
 * A workspace's snapshots as a tree (each row under its parent), with
 * create, restore, fork and delete.
 */
export function Snapshots({ id, running, onChange }: { id: string; running: boolean; onChange: () => void }) {
  const base = `workspaces/${encodeURIComponent(id)}`;
  const list = useQuery({
    queryKey: ["snapshots", id],
    queryFn: () => api<SnapshotList>("GET", `${base}/snapshots`),
  });
  const [name, setName] = useState("");
  const [memory, setMemory] = useState(false);
  const [status, setStatus] = useState("");
  const [busy, setBusy] = useState(false);

  const act = async (what: string, f: () => Promise<string>) => {
    setStatus(`${what}…`);
    setBusy(true);
    try {
      setStatus(await f());
      await list.refetch();
      onChange();
    } catch (e) {
      setStatus(`error: ${errorText(e)}`);
    } finally {
      setBusy(false);
    }
  };
  const take = (e: React.FormEvent) => {
    e.preventDefault();
    act("taking snapshot", async () => {
      const s = await api<Snapshot>("POST", `${base}/snapshots`, { name, include_memory: memory });
      setName("");
      return `snapshot ${s.name} taken`;
    });
  };
  const snaps = list.data?.snapshots ?? [];
  return (
    <div>
      <form className="row" aria-label="take snapshot" onSubmit={take}>
        <input aria-label="snapshot name" placeholder="snapshot name" value={name} onChange={(e) => setName(e.target.value)} />
        <label className="small">
          <input type="checkbox" checked={memory} disabled={!running} onChange={(e) => setMemory(e.target.checked)} /> with memory (running processes)
        </label>
        <button type="submit" disabled={busy || !name}>
          Take snapshot
        </button>
      </form>
      {status && (
        <p className="small" data-testid="snapshot-status">
          {status}
        </p>
      )}
      {list.isError && <p className="error">{(list.error as Error).message}</p>}
      <table className="list" aria-label="snapshots">
        <thead>
          <tr>
            <th>Name</th>
            <th>Kind</th>
            <th>Disk layer</th>
            <th>Memory</th>
            <th>Forks</th>
            <th>Created</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {snaps.length === 0 && (
            <tr>
              <td colSpan={7} className="muted">
                No snapshots yet.
              </td>
            </tr>
          )}
          {treeOrder(snaps).map(({ s, depth }) => (
            <tr key={s.snapshot_id} data-snapshot={s.name}>
              <td style={{ paddingLeft: 10 + depth * 18 }}>
                {depth > 0 && <span className="muted">└ </span>}
                {s.name}
              </td>
              <td>{s.has_memory ? "disk + memory" : "disk"}</td>
              <td>{bytes(s.disk_bytes)}</td>
              <td>{s.has_memory ? bytes(s.memory_bytes) : "—"}</td>
              <td>{s.forks}</td>
              <td>{new Date(s.created_at).toLocaleString()}</td>
              <td className="actions">
                <ForkButton busy={busy} onFork={(newName) => act("forking", async () => {
                  const r = await api<ForkResult>("POST", `${base}/fork`, { snapshot_name: s.name, new_name: newName || undefined });
                  return `forked ${r.forks.map((f) => f.name).join(", ")}`;
                })} />
                <ConfirmButton
                  label="Restore"
                  danger
                  disabled={busy}
                  question={`Roll back to ${s.name}? The current state and newer snapshots are dropped.`}
                  onConfirm={() => act("restoring", async () => {
                    const r = await api<RestoreResult>("POST", `${base}/snapshots/${encodeURIComponent(s.name)}/restore`);
                    return `restored ${r.name} (${r.state})`;
                  })}
                />
                <ConfirmButton
                  label="Delete"
                  danger
                  disabled={busy || s.forks > 0}
                  question={`Delete snapshot ${s.name}?`}
                  onConfirm={() => act("deleting", async () => {
                    await api("DELETE", `${base}/snapshots/${encodeURIComponent(s.name)}`);
                    return `deleted ${s.name}`;
                  })}
                />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function ForkButton({ busy, onFork }: { busy: boolean; onFork: (name: string) => void }) {
  const [asking, setAsking] = useState(false);
  const [name, setName] = useState("");
  if (!asking) {
    return (
      <button disabled={busy} onClick={() => setAsking(true)}>
        Fork
      </button>
    );
  }
  return (
    <span className="confirm">
      <input aria-label="fork name" placeholder="fork name (optional)" value={name} onChange={(e) => setName(e.target.value)} />
      <button
        onClick={() => {
          setAsking(false);
          onFork(name);
        }}
      >
        Create fork
      </button>
      <button onClick={() => setAsking(false)}>Cancel</button>
    </span>
  );
}

/** The snapshots depth-first, each under its parent (named by name). */
export function treeOrder(snaps: Snapshot[]): { s: Snapshot; depth: number }[] {
  const ids = new Set(snaps.map((s) => s.name));
  const children = new Map<string, Snapshot[]>();
  const roots: Snapshot[] = [];
  for (const s of snaps) {
    if (s.parent && ids.has(s.parent)) {
      children.set(s.parent, [...(children.get(s.parent) ?? []), s]);
    } else {
      roots.push(s);
    }
  }
  const out: { s: Snapshot; depth: number }[] = [];
  const walk = (s: Snapshot, depth: number) => {
    out.push({ s, depth });
    for (const c of children.get(s.name) ?? []) walk(c, depth + 1);
  };
  roots.forEach((r) => walk(r, 0));
  return out;
}
