package dashboard

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/agentiso/agentiso/internal/api"
	"github.com/agentiso/agentiso/internal/errdefs"
)

// ContentSecurityPolicy is sent with every response. Scripts come only
// from the dashboard's own files: no inline script, no eval (M-24).
// Styles allow 'unsafe-inline' because xterm.js's renderer writes <style>
// elements for the terminal's size and colours; a style cannot run code.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// securityHeaders sets the security headers before anything else writes,
// so every response has them: pages, static files, API answers, errors,
// redirects (finding H-2). No Access-Control-* header is ever set (C-1).
func (s *Server) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), usb=(), payment=()")
		if s.tls {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if strings.HasPrefix(r.URL.Path, "/api/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a handler's panic into a 500 that still has the
// security headers, and logs it.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("dashboard handler panicked", "path", r.URL.Path, "panic", v)
				api.WriteError(w, errdefs.With(errdefs.Internal, "", nil))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// checkHostAndOrigin refuses, before any other work:
//   - a Host the dashboard does not answer to: a page of another site
//     whose name was re-pointed at this machine (DNS rebinding) is then
//     not same-origin with anything here;
//   - a request whose Origin is another origin, or that the browser marks
//     cross-site (C-1);
//   - a state change or WebSocket upgrade without an Origin (browsers
//     always send one for these).
func (s *Server) checkHostAndOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hosts[strings.ToLower(r.Host)] {
			api.WriteError(w, errdefs.PermissionDeniedf("host: the dashboard does not answer to this host name (dashboard.allowed_hosts)"))
			return
		}
		origin := r.Header.Get("Origin")
		switch {
		case origin != "" && !s.origins[strings.ToLower(origin)]:
			api.WriteError(w, errdefs.PermissionDeniedf("origin: cross-origin requests are refused"))
			return
		case r.Header.Get("Sec-Fetch-Site") == "cross-site":
			api.WriteError(w, errdefs.PermissionDeniedf("origin: cross-site requests are refused"))
			return
		case origin == "" && (!safeMethod(r.Method) || isWebSocket(r)):
			api.WriteError(w, errdefs.PermissionDeniedf("origin: required for this request"))
			return
		case r.Method == http.MethodOptions:
			// No preflight is ever answered: no CORS.
			api.WriteError(w, errdefs.PermissionDeniedf("origin: cross-origin requests are refused"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead
}

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// tokenEqual compares two tokens in constant time; an empty one never
// matches.
func tokenEqual(got, want string) bool {
	if got == "" || want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
