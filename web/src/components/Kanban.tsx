import { useEffect, useState } from "react";
import { api, errorText } from "../api";
import { useSubmit } from "../useSubmit";
import { columns, DRAG_TYPE, invalidTasks, moveFor, neighbour, waitingOn, withMove } from "../kanban";
import type { Board, Task, TeamMember } from "../types";

const label = (s: string) => s.replace(/_/g, " ");

/**
 * A team's task board as a kanban: a column per status, cards dragged
 * between them (HTML5 drag and drop) or moved with the status menu on each
 * card or the arrow keys. A move goes to the daemon, which changes the
 * task note's frontmatter under the board's rules; the live updates bring
 * the board back as it is on disk.
 */
export function Kanban({ team, board, members }: { team: string; board: Board; members: TeamMember[] }) {
  const [pending, setPending] = useState<{ task: string; to: string } | null>(null);
  const [over, setOver] = useState("");
  const [status, setStatus] = useState("");
  const [error, setError] = useState("");

  // The move shows until the board from the daemon has it (or 5 s pass).
  useEffect(() => {
    if (!pending) return;
    if (board.tasks.find((t) => t.id === pending.task)?.status === pending.to) setPending(null);
    const t = window.setTimeout(() => setPending(null), 5000);
    return () => window.clearTimeout(t);
  }, [board, pending]);

  const shown = pending ? withMove(board, pending.task, pending.to) : board;
  const move = async (taskId: string, to: string) => {
    const m = moveFor(shown, taskId, to);
    if (!m) return;
    setError("");
    setPending({ task: m.task, to: m.to });
    try {
      await api<Task>("POST", `teams/${encodeURIComponent(team)}/tasks/${encodeURIComponent(m.task)}/move`, { status: m.to });
      setStatus(`moved ${m.task} from ${label(m.from)} to ${label(m.to)}`);
    } catch (e) {
      setPending(null);
      setError(errorText(e));
    }
  };

  const invalid = invalidTasks(shown);
  return (
    <div>
      <NewTask team={team} members={members} onError={setError} onDone={setStatus} />
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <p className="small muted" data-testid="kanban-status" aria-live="polite">
        {status}
      </p>
      <div className="kanban" aria-label="task board">
        {columns(shown).map((col) => (
          <section
            key={col.status}
            className={over === col.status ? "kanban-col over" : "kanban-col"}
            data-status={col.status}
            aria-label={`${label(col.status)} column`}
            onDragOver={(e) => {
              if (!e.dataTransfer.types.includes(DRAG_TYPE)) return;
              e.preventDefault();
              e.dataTransfer.dropEffect = "move";
              setOver(col.status);
            }}
            onDragLeave={() => setOver((o) => (o === col.status ? "" : o))}
            onDrop={(e) => {
              e.preventDefault();
              setOver("");
              const id = e.dataTransfer.getData(DRAG_TYPE);
              if (id) void move(id, col.status);
            }}
          >
            <h4>
              {label(col.status)} <span className="muted">{col.tasks.length}</span>
            </h4>
            {col.tasks.map((t) => {
              const waiting = waitingOn(shown, t);
              return (
                <article
                  key={t.id}
                  className={pending?.task === t.id ? "kanban-card moving" : "kanban-card"}
                  data-task={t.id}
                  draggable
                  tabIndex={0}
                  aria-label={`task ${t.id}`}
                  onDragStart={(e) => {
                    e.dataTransfer.setData(DRAG_TYPE, t.id);
                    e.dataTransfer.effectAllowed = "move";
                  }}
                  onKeyDown={(e) => {
                    if (e.target !== e.currentTarget) return;
                    const step = e.key === "ArrowLeft" ? -1 : e.key === "ArrowRight" ? 1 : 0;
                    const to = step && neighbour(shown, t.status, step);
                    if (to) {
                      e.preventDefault();
                      void move(t.id, to);
                    }
                  }}
                >
                  <div className="kanban-title">{t.title}</div>
                  <div className="small muted mono">{t.id}</div>
                  {t.owner && <div className="small">owner: {t.owner}</div>}
                  {t.depends_on.length > 0 && (
                    <div className={waiting.length ? "small error" : "small muted"}>
                      depends on {t.depends_on.join(", ")}
                      {waiting.length > 0 && ` (waiting on ${waiting.join(", ")})`}
                    </div>
                  )}
                  <select aria-label={`status of ${t.id}`} value={t.status} onChange={(e) => void move(t.id, e.target.value)}>
                    {shown.statuses.map((s) => (
                      <option key={s} value={s}>
                        {label(s)}
                      </option>
                    ))}
                  </select>
                  <a className="small" href={`#/vault/${t.path}`}>
                    note
                  </a>
                </article>
              );
            })}
          </section>
        ))}
      </div>
      {invalid.length > 0 && (
        <div className="small">
          <h4>Notes that are not valid tasks</h4>
          <ul>
            {invalid.map((t) => (
              <li key={t.id}>
                <a href={`#/vault/${t.path}`}>{t.path}</a>: <span className="error">{t.invalid}</span>
              </li>
            ))}
          </ul>
        </div>
      )}
    </div>
  );
}

/** Adds a task note to the board. */
function NewTask({ team, members, onError, onDone }: { team: string; members: TeamMember[]; onError: (e: string) => void; onDone: (s: string) => void }) {
  const [id, setId] = useState("");
  const [title, setTitle] = useState("");
  const [owner, setOwner] = useState("");
  const [deps, setDeps] = useState("");
  const { busy, submit: form } = useSubmit(onError);
  const submit = form(async () => {
    const depends_on = deps.split(",").map((d) => d.trim()).filter(Boolean);
    await api<Task>("POST", `teams/${encodeURIComponent(team)}/tasks`, { id, title, owner: owner || undefined, depends_on });
    onDone(`task ${id} added`);
    setId("");
    setTitle("");
    setDeps("");
  });
  return (
    <form className="create" onSubmit={submit} aria-label="new task">
      <input placeholder="task id" aria-label="task id" value={id} onChange={(e) => setId(e.target.value)} required />
      <input className="grow" placeholder="title" aria-label="task title" value={title} onChange={(e) => setTitle(e.target.value)} required />
      <select aria-label="task owner" value={owner} onChange={(e) => setOwner(e.target.value)}>
        <option value="">no owner</option>
        {members.map((m) => (
          <option key={m.name} value={m.name}>
            {m.name}
          </option>
        ))}
      </select>
      <input placeholder="depends on (ids, comma-separated)" aria-label="depends on" value={deps} onChange={(e) => setDeps(e.target.value)} />
      <button type="submit" disabled={busy || !id || !title}>
        Add task
      </button>
    </form>
  );
}
