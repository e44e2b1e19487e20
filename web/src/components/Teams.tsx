import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { api, errorText } from "../api";
import { useSubmit } from "../useSubmit";
import { useStore } from "../store";
import type { Team, TeamMessage } from "../types";
import { ConfirmButton } from "./Confirm";
import { Kanban } from "./Kanban";

/** Teams in hierarchy order: each top-level team, then its sub-teams under it. */
export function teamTree(teams: Team[]): { t: Team; depth: number }[] {
  const byName = new Map(teams.map((t) => [t.name, t]));
  const out: { t: Team; depth: number }[] = [];
  const seen = new Set<string>();
  const visit = (t: Team, depth: number) => {
    if (seen.has(t.name)) return;
    seen.add(t.name);
    out.push({ t, depth });
    for (const s of [...t.sub_teams].sort()) {
      const sub = byName.get(s);
      if (sub) visit(sub, depth + 1);
    }
  };
  const roots = teams.filter((t) => !t.parent_team || !byName.has(t.parent_team)).sort((a, b) => a.name.localeCompare(b.name));
  roots.forEach((t) => visit(t, 0));
  return out;
}

/** The teams screen: the list, or one team (members, messages, task board). */
export function Teams({ name }: { name?: string }) {
  const teams = useStore((s) => s.teams);
  if (teams === null) return <p className="muted">Loading teams…</p>;
  if (name) {
    const t = teams.find((x) => x.name === name);
    return t ? <TeamDetail t={t} /> : <p className="muted">No such team (it may have been destroyed). <a href="#/teams">All teams</a></p>;
  }
  return <TeamList teams={teams} />;
}

function TeamList({ teams }: { teams: Team[] }) {
  const [error, setError] = useState("");
  return (
    <section>
      <header className="page-head">
        <h2>Teams</h2>
      </header>
      <CreateTeam onError={setError} />
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <table className="list" aria-label="teams">
        <thead>
          <tr>
            <th>Team</th>
            <th>State</th>
            <th>Members</th>
            <th>VMs (used / budget)</th>
            <th>Tasks</th>
          </tr>
        </thead>
        <tbody>
          {teams.length === 0 && (
            <tr>
              <td colSpan={5} className="muted">
                No teams yet. Agents make them with the team tool; you can here too.
              </td>
            </tr>
          )}
          {teamTree(teams).map(({ t, depth }) => (
            <tr key={t.name} data-team={t.name}>
              <td className={`depth-${Math.min(depth, 3)}`}>
                {depth > 0 && <span className="muted">↳ </span>}
                <a href={`#/teams/${encodeURIComponent(t.name)}`}>{t.name}</a>
              </td>
              <td>
                <span className={`state state-${t.state === "ready" ? "running" : t.state}`}>{t.state}</span>
              </td>
              <td>
                {t.members.map((m) => (
                  <span key={m.name} className="small" title={m.role}>
                    {m.name} <span className={`state state-${m.state}`}>{m.state}</span>{" "}
                  </span>
                ))}
              </td>
              <td>
                {t.used_vms} / {t.max_vms}
              </td>
              <td className="small">{t.board ? `${t.board.tasks.length} (${t.board.tasks.filter((x) => x.status === "done").length} done)` : "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** Parses "name:role, name:role" into roles. */
export function parseRoles(s: string): { name: string; role: string }[] {
  return s
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => {
      const [name, role] = p.split(":").map((x) => x.trim());
      return { name, role: role || "agent" };
    });
}

function CreateTeam({ onError }: { onError: (e: string) => void }) {
  const [name, setName] = useState("");
  const [roles, setRoles] = useState("");
  const [parent, setParent] = useState("");
  const { busy, submit: form } = useSubmit(onError);
  const submit = form(async () => {
    await api<Team>("POST", "teams", { name, roles: parseRoles(roles), parent_team: parent || undefined });
    setName("");
    setRoles("");
  });
  return (
    <form className="create" onSubmit={submit} aria-label="create team">
      <input placeholder="team name" aria-label="team name" value={name} onChange={(e) => setName(e.target.value)} />
      <input className="grow" placeholder="members: name:role, name:role (one VM each)" aria-label="members" value={roles} onChange={(e) => setRoles(e.target.value)} />
      <input placeholder="parent team (optional)" aria-label="parent team" value={parent} onChange={(e) => setParent(e.target.value)} />
      <button type="submit" disabled={busy || !name || !roles}>
        {busy ? "Creating…" : "Create team"}
      </button>
    </form>
  );
}

function TeamDetail({ t }: { t: Team }) {
  const [error, setError] = useState("");
  const destroy = async () => {
    setError("");
    try {
      await api("DELETE", `teams/${encodeURIComponent(t.name)}`);
      location.hash = "#/teams";
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <section>
      <header className="page-head">
        <h2>
          <a href="#/teams">Teams</a> / {t.parent_team && <><a href={`#/teams/${encodeURIComponent(t.parent_team)}`}>{t.parent_team}</a> / </>}
          {t.name}
        </h2>
        <span className={`state state-${t.state === "ready" ? "running" : t.state}`}>{t.state}</span>
        <span className="small muted">
          {t.used_vms} of {t.max_vms} VMs
          {t.sub_teams.length > 0 && "; sub-teams: "}
          {t.sub_teams.map((s, i) => (
            <span key={s}>
              {i > 0 && ", "}
              <a href={`#/teams/${encodeURIComponent(s)}`}>{s}</a>
            </span>
          ))}
        </span>
        <span className="spacer" />
        <ConfirmButton label="Destroy team" danger question={`Destroy ${t.name}, its sub-teams and their workspaces?`} onConfirm={destroy} />
      </header>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <table className="list" aria-label="members">
        <thead>
          <tr>
            <th>Member</th>
            <th>Role</th>
            <th>Workspace</th>
            <th>State</th>
            <th>IP</th>
            <th>Unread</th>
            <th>Tasks running</th>
          </tr>
        </thead>
        <tbody>
          {t.members.map((m) => (
            <tr key={m.name} data-member={m.name}>
              <td>{m.name}</td>
              <td>
                {m.role}
                {m.skills.length > 0 && <div className="small muted">{m.skills.join(", ")}</div>}
              </td>
              <td>{m.workspace_id ? <a href={`#/workspaces/${encodeURIComponent(m.workspace_id)}`}>{m.workspace_name}</a> : "—"}</td>
              <td>
                <span className={`state state-${m.state}`}>{m.state}</span>
              </td>
              <td>{m.ip || "—"}</td>
              <td>{m.unread_messages}</td>
              <td>{m.pending_tasks}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3 className="section">Task board</h3>
      {t.board ? <Kanban team={t.name} board={t.board} members={t.members} /> : <p className="muted">The task board lives in the vault, which is disabled on this daemon.</p>}
      <h3 className="section">Messages</h3>
      <Messages t={t} />
    </section>
  );
}

/** The team's recent messages (reading them takes nothing from the inboxes) and a form to send one as the operator. */
function Messages({ t }: { t: Team }) {
  const unread = t.members.map((m) => m.unread_messages).join(",");
  const history = useQuery({
    queryKey: ["team-messages", t.name, unread],
    queryFn: () => api<{ messages: TeamMessage[]; operator: string }>("GET", `teams/${encodeURIComponent(t.name)}/messages?limit=50`),
    refetchInterval: 5000,
  });
  const [to, setTo] = useState("*");
  const [content, setContent] = useState("");
  const [status, setStatus] = useState("");
  const send = async (e: React.FormEvent) => {
    e.preventDefault();
    setStatus("");
    try {
      const r = await api<{ recipients: string[] }>("POST", `teams/${encodeURIComponent(t.name)}/messages`, { to, content });
      setStatus(`sent to ${r.recipients.join(", ")}`);
      setContent("");
      history.refetch();
    } catch (err) {
      setStatus(`error: ${errorText(err)}`);
    }
  };
  const ms = history.data?.messages ?? [];
  return (
    <div className="team-cols">
      <div className="card">
        {history.isError && <p className="error">{(history.error as Error).message}</p>}
        {ms.length === 0 && <p className="muted">No messages yet.</p>}
        <ul className="messages" aria-label="messages">
          {ms.map((m) => (
            <li key={m.id}>
              <span className="small">
                <b>{m.from}</b> → {m.to.join(", ")}{" "}
                <span className="muted">
                  {new Date(m.sent_at).toLocaleTimeString()} · {m.message_type}
                  {" · "}
                  {m.read_by.length === m.to.length ? "read" : m.read_by.length ? `read by ${m.read_by.join(", ")}` : "unread"}
                </span>
              </span>
              <pre>{m.content}</pre>
            </li>
          ))}
        </ul>
      </div>
      <form className="card" onSubmit={send} aria-label="send message">
        <h3>Message the team as {history.data?.operator ?? "operator"}</h3>
        <div className="row">
          <select aria-label="recipient" value={to} onChange={(e) => setTo(e.target.value)}>
            <option value="*">every member</option>
            {t.members.map((m) => (
              <option key={m.name} value={m.name}>
                {m.name}
              </option>
            ))}
          </select>
          <button type="submit" disabled={!content}>
            Send
          </button>
        </div>
        <textarea className="editor" rows={5} aria-label="message" value={content} onChange={(e) => setContent(e.target.value)} />
        {status && (
          <p className="small" data-testid="message-status">
            {status}
          </p>
        )}
      </form>
    </div>
  );
}
