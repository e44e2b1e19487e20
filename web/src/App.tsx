import { useEffect, useState } from "react";
import { api, setCsrfToken } from "./api";
import { connectEvents } from "./events";
import { useStore } from "./store";
import type { Features, Session } from "./types";
import { Audit } from "./components/Audit";
import { Host } from "./components/Host";
import { Login } from "./components/Login";
import { Workspaces } from "./components/Workspaces";
import { Teams } from "./components/Teams";
import { Vault } from "./components/Vault";
import { Unavailable, WorkspaceDetail } from "./components/WorkspaceDetail";

/** The current hash route, e.g. ["workspaces", "<id>"]. */
function useRoute(): string[] {
  const parse = () => location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const on = () => setRoute(parse());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}

export function App() {
  const session = useStore((s) => s.session);
  const setSession = useStore((s) => s.setSession);
  const setFeatures = useStore((s) => s.setFeatures);
  const [checked, setChecked] = useState(false);
  const route = useRoute();
  const features = useStore((s) => s.features);

  // A page load with a live cookie goes straight in.
  useEffect(() => {
    api<Session>("GET", "session")
      .then((s) => {
        if (!s.logged_in) return setSession(null);
        setCsrfToken(s.csrf_token);
        setSession(s);
      })
      .catch(() => setSession(null))
      .finally(() => setChecked(true));
  }, [setSession]);

  useEffect(() => {
    if (!session) return;
    api<Features>("GET", "features").then(setFeatures).catch(() => undefined);
    return connectEvents();
  }, [session, setFeatures]);

  if (!checked) return null;
  if (!session) return <Login />;

  const logout = async () => {
    try {
      await api("POST", "logout");
    } finally {
      setCsrfToken("");
      setSession(null);
      location.hash = "";
    }
  };
  const page = route[0] ?? "workspaces";
  return (
    <div className="app">
      <nav className="side" aria-label="main">
        <div className="brand">agentiso</div>
        <a className={page === "workspaces" ? "active" : ""} href="#/workspaces">
          Workspaces
        </a>
        <a className={page === "teams" ? "active" : ""} href="#/teams">
          Teams
        </a>
        <a className={page === "vault" ? "active" : ""} href="#/vault">
          Vault
        </a>
        <a className={page === "audit" ? "active" : ""} href="#/audit">
          Audit log
        </a>
        <a className={page === "host" ? "active" : ""} href="#/host">
          Host
        </a>
        <span className="spacer" />
        <button className="logout" onClick={logout}>
          Log out
        </button>
      </nav>
      <main>
        {page === "workspaces" && !route[1] && <Workspaces />}
        {page === "workspaces" && route[1] && <WorkspaceDetail id={route[1]} />}
        {page === "teams" && (features?.teams ? <Teams name={route[1]} /> : <Unavailable what="Teams, messages and the task board" />)}
        {page === "vault" && (features?.vault ? <Vault path={route.slice(1).join("/") || undefined} /> : <Unavailable what="The vault" />)}
        {page === "audit" && <Audit />}
        {page === "host" && <Host />}
      </main>
    </div>
  );
}
