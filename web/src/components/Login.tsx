import { useState } from "react";
import { api, setCsrfToken } from "../api";
import { useSubmit } from "../useSubmit";
import { useStore } from "../store";
import type { Session } from "../types";

/** The login page: exchanges the admin token for a session cookie. */
export function Login() {
  const [token, setToken] = useState("");
  const [error, setError] = useState("");
  const { busy, submit: form } = useSubmit(setError);
  const setSession = useStore((s) => s.setSession);

  const submit = form(async () => {
    const s = await api<Session>("POST", "login", { token });
    setCsrfToken(s.csrf_token);
    setToken("");
    setSession(s);
  });

  return (
    <div className="login">
      <form onSubmit={submit} aria-label="log in">
        <h1>agentiso</h1>
        <p className="muted">
          Log in with the admin token: the <code>dashboard.admin_token_file</code>, <code>AGENTISO_ADMIN_TOKEN</code>, or the
          token the daemon generated into <code>&lt;data_dir&gt;/dashboard-token</code>.
        </p>
        <label>
          Admin token
          <input
            type="password"
            name="token"
            autoComplete="current-password"
            value={token}
            onChange={(e) => setToken(e.target.value)}
            autoFocus
            required
          />
        </label>
        <button type="submit" disabled={busy || !token}>
          Log in
        </button>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </div>
  );
}
