import { useState } from "react";
import { api, errorText } from "../api";
import type { PortForwardResult, Workspace } from "../types";

/** Parses "22, 8080" into ports; a word that is not a port is an error naming it. */
export function parsePorts(s: string): number[] {
  const out: number[] = [];
  for (const p of s.split(/[\s,]+/).filter(Boolean)) {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`allowed_ports: ${p} is not a port (1-65535)`);
    out.push(n);
  }
  return out;
}

/**
 * A workspace's network: its port forwards (list, add, remove) and its
 * policy (internet, traffic with other workspaces, inbound ports), changed
 * through the same manager calls as the port_forward and network_policy
 * tools.
 */
export function Network({ w, onChange }: { w: Workspace; onChange: () => void }) {
  const q = `workspaces/${encodeURIComponent(w.workspace_id)}`;
  const [guest, setGuest] = useState("");
  const [host, setHost] = useState("");
  const [status, setStatus] = useState("");
  const [error, setError] = useState("");
  const [internet, setInternet] = useState(w.network.allow_internet);
  const [interVM, setInterVM] = useState(w.network.allow_inter_vm);
  const [ports, setPorts] = useState(w.network.allowed_ports.join(", "));
  const call = async (f: () => Promise<string>) => {
    setError("");
    setStatus("");
    try {
      setStatus(await f());
      onChange();
    } catch (e) {
      setError(errorText(e));
    }
  };
  const forwards = w.port_forwards ?? [];
  return (
    <div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {status && (
        <p className="small" data-testid="network-status">
          {status}
        </p>
      )}
      <h3>Port forwards</h3>
      <table className="list" aria-label="port forwards">
        <thead>
          <tr>
            <th>Host port</th>
            <th>Workspace port</th>
            <th>Since</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {forwards.length === 0 && (
            <tr>
              <td colSpan={4} className="muted">
                No port forwards.
              </td>
            </tr>
          )}
          {forwards.map((f) => (
            <tr key={f.guest_port} data-forward={f.guest_port}>
              <td className="mono">{f.host_port}</td>
              <td className="mono">
                {w.ip || "—"}:{f.guest_port}
              </td>
              <td className="small">{new Date(f.created_at).toLocaleString()}</td>
              <td className="actions">
                <button
                  aria-label={`remove forward of port ${f.guest_port}`}
                  onClick={() =>
                    call(async () => {
                      const r = await api<PortForwardResult>("DELETE", `${q}/port_forwards/${f.guest_port}`);
                      return r.message;
                    })
                  }
                >
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form
        className="create"
        aria-label="add port forward"
        onSubmit={(e) => {
          e.preventDefault();
          call(async () => {
            const r = await api<PortForwardResult>("POST", `${q}/port_forwards`, { guest_port: Number(guest), host_port: host ? Number(host) : undefined });
            setGuest("");
            setHost("");
            return r.message;
          });
        }}
      >
        <input placeholder="workspace port" aria-label="guest port" inputMode="numeric" value={guest} onChange={(e) => setGuest(e.target.value)} />
        <input placeholder="host port (default: a free one)" aria-label="host port" inputMode="numeric" value={host} onChange={(e) => setHost(e.target.value)} />
        <button type="submit" disabled={!guest}>
          Add forward
        </button>
      </form>
      <h3>Network policy</h3>
      <form
        aria-label="network policy"
        onSubmit={(e) => {
          e.preventDefault();
          call(async () => {
            const allowed_ports = parsePorts(ports);
            await api("PATCH", `${q}/network`, { allow_internet: internet, allow_inter_vm: interVM, allowed_ports });
            return "policy applied";
          });
        }}
      >
        <p>
          <label>
            <input type="checkbox" checked={internet} onChange={(e) => setInternet(e.target.checked)} /> Internet access (NAT, DNS)
          </label>
        </p>
        <p>
          <label>
            <input type="checkbox" checked={interVM} onChange={(e) => setInterVM(e.target.checked)} /> Traffic with the owner's other workspaces that allow it too
          </label>
        </p>
        <div className="row">
          <label htmlFor="allowed-ports">Inbound ports</label>
          <input id="allowed-ports" className="mono" placeholder="e.g. 22, 8080" value={ports} onChange={(e) => setPorts(e.target.value)} />
          <button type="submit">Apply policy</button>
        </div>
      </form>
    </div>
  );
}
