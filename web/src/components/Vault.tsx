import { useQuery } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { api, errorText } from "../api";
import type { VaultEntry, VaultHit, VaultNote } from "../types";

/**
 * The vault: the notes as a tree, search, and a markdown editor (the text
 * with its YAML frontmatter) that shows the note's tags, links and
 * backlinks as the vault reads them.
 */
export function Vault({ path }: { path?: string }) {
  const tree = useQuery({
    queryKey: ["vault-tree"],
    queryFn: () => api<{ entries: VaultEntry[]; truncated: boolean }>("GET", "vault/notes?recursive=true"),
  });
  const [query, setQuery] = useState("");
  const [hits, setHits] = useState<VaultHit[] | null>(null);
  const [newPath, setNewPath] = useState("");
  // A note made with New has nothing to load until it is saved.
  const [fresh, setFresh] = useState("");
  const open = (p: string) => {
    location.hash = `#/vault/${p.split("/").map(encodeURIComponent).join("/")}`;
  };
  const search = async (e: React.FormEvent) => {
    e.preventDefault();
    const r = await api<{ results: VaultHit[] }>("GET", `vault/search?q=${encodeURIComponent(query)}`);
    setHits(r.results);
  };
  return (
    <section>
      <header className="page-head">
        <h2>Vault</h2>
      </header>
      <div className="vault">
        <aside className="vault-side">
          <form className="row" aria-label="search the vault" onSubmit={search}>
            <input className="grow" aria-label="search" placeholder="search notes" value={query} onChange={(e) => setQuery(e.target.value)} />
            <button type="submit" disabled={!query}>
              Search
            </button>
          </form>
          {hits && (
            <ul className="vault-hits" aria-label="search results">
              {hits.length === 0 && <li className="muted">No match.</li>}
              {hits.map((h, i) => (
                <li key={i}>
                  <a href={`#/vault/${h.path}`}>{h.path}</a>:{h.line_number} <span className="muted">{h.line}</span>
                </li>
              ))}
            </ul>
          )}
          <form
            className="row"
            aria-label="new note"
            onSubmit={(e) => {
              e.preventDefault();
              const p = newPath.endsWith(".md") ? newPath : `${newPath}.md`;
              setFresh(p);
              open(p);
              setNewPath("");
            }}
          >
            <input className="grow" aria-label="new note path" placeholder="folder/new-note.md" value={newPath} onChange={(e) => setNewPath(e.target.value)} />
            <button type="submit" disabled={!newPath}>
              New
            </button>
          </form>
          <ul className="vault-tree" aria-label="notes">
            {tree.data?.entries.length === 0 && <li className="muted">The vault is empty.</li>}
            {tree.data?.entries.map((e) => (
              <li key={e.path} style={{ paddingLeft: (e.path.split("/").length - 1) * 14 }}>
                {e.is_dir ? <span className="muted">{e.path.split("/").pop()}/</span> : <a className={e.path === path ? "active" : ""} href={`#/vault/${e.path}`}>{e.path.split("/").pop()}</a>}
              </li>
            ))}
          </ul>
        </aside>
        <div className="vault-main">{path ? <Editor
              key={path}
              path={path}
              isNew={fresh === path}
              onSaved={() => {
                setFresh("");
                tree.refetch();
              }}
            /> : <p className="muted">Pick a note, or make a new one.</p>}</div>
      </div>
    </section>
  );
}

const newNote = "---\ntags: []\n---\n\n";

function Editor({ path, isNew, onSaved }: { path: string; isNew: boolean; onSaved: () => void }) {
  const note = useQuery({
    queryKey: ["vault-note", path],
    queryFn: () => api<VaultNote>("GET", `vault/note?path=${encodeURIComponent(path)}`),
    enabled: !isNew,
    retry: false,
  });
  const [text, setText] = useState(isNew ? newNote : "");
  const [status, setStatus] = useState("");
  useEffect(() => {
    if (note.data) setText(note.data.content);
  }, [note.data]);
  const save = async () => {
    try {
      const r = await api<{ size: number; created: boolean }>("PUT", "vault/note", { path, content: text });
      setStatus(`saved ${r.size} bytes${r.created ? " (new note)" : ""}`);
      onSaved();
      if (!isNew) await note.refetch();
    } catch (e) {
      setStatus(`error: ${errorText(e)}`);
    }
  };
  const n = note.data;
  return (
    <div>
      <div className="row">
        <h3 className="grow mono">{path}</h3>
        <button onClick={save}>Save note</button>
      </div>
      {status && (
        <p className="small" data-testid="vault-status">
          {status}
        </p>
      )}
      {note.isError && <p className="error">{(note.error as Error).message}</p>}
      <textarea className="editor mono" aria-label="note text" rows={18} value={text} onChange={(e) => setText(e.target.value)} />
      {n && (
        <dl className="facts" aria-label="note facts">
          <dt>Tags</dt>
          <dd data-testid="vault-tags">{n.tags.length ? n.tags.map((t) => <span key={t} className="pill">#{t} </span>) : "none"}</dd>
          <dt>Frontmatter</dt>
          <dd className="mono small">{n.frontmatter_error ? <span className="error">{n.frontmatter_error}</span> : JSON.stringify(n.frontmatter ?? {})}</dd>
          <dt>Links</dt>
          <dd>
            {n.links.length
              ? n.links.map((l, i) => (
                  <span key={i}>
                    {l.path ? <a href={`#/vault/${l.path}`}>{l.target}</a> : <span className="muted">{l.target} (no such note)</span>}{" "}
                  </span>
                ))
              : "none"}
          </dd>
          <dt>Backlinks</dt>
          <dd data-testid="vault-backlinks">
            {n.backlinks.length
              ? n.backlinks.map((b, i) => (
                  <span key={i}>
                    <a href={`#/vault/${b.path}`}>{b.path}</a>:{b.line}{" "}
                  </span>
                ))
              : "none"}
          </dd>
        </dl>
      )}
    </div>
  );
}
