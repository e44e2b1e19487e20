import { useQuery } from "@tanstack/react-query";
import { api } from "../api";
import type { AuditEntry } from "../types";

/** The append-only audit log, newest first. */
export function Audit() {
  const q = useQuery({
    queryKey: ["audit"],
    queryFn: () => api<{ entries: AuditEntry[] }>("GET", "audit?limit=200"),
    refetchInterval: 5000,
  });
  return (
    <section>
      <header className="page-head">
        <h2>Audit log</h2>
      </header>
      {q.isError && <p className="error">{(q.error as Error).message}</p>}
      <table className="list" aria-label="audit log">
        <thead>
          <tr>
            <th>Time</th>
            <th>Actor</th>
            <th>Session</th>
            <th>Action</th>
            <th>Target</th>
            <th>Result</th>
            <th>ms</th>
          </tr>
        </thead>
        <tbody>
          {(q.data?.entries ?? []).map((e) => (
            <tr key={e.id}>
              <td className="small">{new Date(e.time).toLocaleString()}</td>
              <td>{e.actor}</td>
              <td className="mono small">{e.session_id.slice(0, 8)}</td>
              <td>{e.action}</td>
              <td className="mono small">{e.target}</td>
              <td className={e.result === "ok" ? "" : "error"}>{e.result === "ok" ? "ok" : e.error_class || "error"}</td>
              <td>{e.duration_ms}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
