// Package dashboard serves the web dashboard: the embedded front end
// (web/, built into dist/) and the REST API (package api) behind a login.
//
// Every rule of the security review's dashboard findings is a piece of Go
// middleware here, each with its own test:
//   - same origin only: no CORS headers are ever sent; a request from
//     another origin, or to a host name the dashboard does not answer to
//     (DNS rebinding), is refused (C-1);
//   - an admin token is required, and a non-loopback address without one
//     refuses to start (H-1, LoadToken); it is compared in constant time
//     (H-5); the login page exchanges it for an HttpOnly, SameSite=Strict
//     session cookie, Secure under TLS (H-4);
//   - every state change carries the login's CSRF token (M-13);
//   - security headers and a CSP without inline script on every response,
//     errors and static files included (H-2, M-24);
//   - WebSocket upgrades need a valid session and the same Origin (H-3);
//   - long-lived streams are capped per login and in all (M-15, in
//     package api's StreamLimiter).
package dashboard

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/netutil"
	"golang.org/x/time/rate"

	"github.com/agentiso/agentiso/internal/api"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/workspace"
)

// CSRFHeader is the request header that carries a login's CSRF token.
const CSRFHeader = "X-CSRF-Token"

// Options configures a Server.
type Options struct {
	// Listen is host:port, host an IP address.
	Listen string
	// AllowedHosts are extra host[:port] names the dashboard answers to.
	AllowedHosts []string
	// TLSCertFile and TLSKeyFile, when set, make the dashboard HTTPS.
	TLSCertFile, TLSKeyFile string
	Token                   Token
	SessionTTL              time.Duration
	// API serves /api/v1/ for a logged-in person.
	API      http.Handler
	Sessions SessionStore
	// Record, when set, receives logins and logouts for the audit log.
	Record func(ctx context.Context, r api.AuditRecord)
	// Assets is the built front end; nil means the embedded one.
	Assets fs.FS
	Logger *slog.Logger
}

// Server is the dashboard's HTTP server.
type Server struct {
	o       Options
	log     *slog.Logger
	tls     bool
	hosts   map[string]bool
	origins map[string]bool
	logins  *logins
	// failedLogins slows down token guessing for everyone at once.
	failedLogins *rate.Limiter
	handler      http.Handler
}

// New checks o and returns a Server. A missing token is an error: LoadToken
// decides what a loopback dashboard without a configured token uses.
func New(o Options) (*Server, error) {
	if o.Token.IsZero() {
		return nil, errdefs.Invalidf("dashboard: an admin token is required")
	}
	if o.API == nil || o.Sessions == nil {
		return nil, errors.New("dashboard: API and session store are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 12 * time.Hour
	}
	if o.Assets == nil {
		o.Assets = Assets()
	}
	s := &Server{
		o: o, log: o.Logger, tls: o.TLSCertFile != "",
		logins:       newLogins(o.Sessions, o.SessionTTL),
		failedLogins: rate.NewLimiter(rate.Limit(5), 10),
	}
	var err error
	if s.hosts, s.origins, err = allowedHosts(o.Listen, o.AllowedHosts, s.tls); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// allowedHosts lists the Host header values the dashboard answers to and
// the origins its pages have: the listen address, loopback names on its
// port, and the configured extra names.
func allowedHosts(listen string, extra []string, tls bool) (map[string]bool, map[string]bool, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, nil, errdefs.Invalidf("dashboard.listen: %q is not host:port", listen)
	}
	hosts := map[string]bool{}
	add := func(h string) { hosts[strings.ToLower(h)] = true }
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		add(net.JoinHostPort(host, port))
	}
	for _, h := range []string{"127.0.0.1", "localhost", "::1"} {
		add(net.JoinHostPort(h, port))
	}
	for _, h := range extra {
		add(h)
	}
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	origins := map[string]bool{}
	for h := range hosts {
		origins[scheme+h] = true
		// Browsers leave the default port out of an Origin.
		if hh, p, err := net.SplitHostPort(h); err == nil && (p == "80" && !tls || p == "443" && tls) {
			if strings.Contains(hh, ":") {
				hh = "[" + hh + "]"
			}
			origins[scheme+hh] = true
		}
	}
	return hosts, origins, nil
}

// Handler is the whole dashboard as an http.Handler (for tests and for
// serving on a listener of one's own).
func (s *Server) Handler() http.Handler { return s.handler }

// Serve listens on the configured address until ctx ends, then ends every
// login.
func (s *Server) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.o.Listen)
	if err != nil {
		return fmt.Errorf("dashboard: listening on %s: %w", s.o.Listen, err)
	}
	return s.ServeListener(ctx, ln)
}

// maxConnections bounds the dashboard's open TCP connections, so a flood
// of idle clients cannot exhaust the daemon's file descriptors.
const maxConnections = 256

// ServeListener serves on ln until ctx ends.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	ln = netutil.LimitListener(ln, maxConnections)
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	if s.tls {
		cert, err := tls.LoadX509KeyPair(s.o.TLSCertFile, s.o.TLSKeyFile)
		if err != nil {
			ln.Close()
			return errdefs.With(errdefs.Invalid, "dashboard.tls_cert_file, dashboard.tls_key_file: cannot load the key pair", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				srv.Shutdown(sctx)
				cancel()
				srv.Close() // hijacked WebSockets too
				return
			case <-t.C:
				s.logins.sweep()
			}
		}
	}()
	s.log.Info("serving the dashboard", "addr", ln.Addr().String(), "tls", s.tls)
	err := srv.Serve(ln)
	s.logins.endAll()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// routes assembles the handler: security headers outermost, so that
// every response has them; then the host and origin checks; then the
// login routes, the API behind the session and CSRF checks, and the
// static front end.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/login", s.login)
	mux.Handle("POST /api/v1/logout", s.requireLogin(http.HandlerFunc(s.logout)))
	mux.HandleFunc("GET /api/v1/session", s.session)
	mux.Handle(api.Prefix, s.requireLogin(s.o.API))
	mux.Handle("/api/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, errdefs.NotFoundf("no such API route"))
	}))
	mux.Handle("/", s.static())
	return s.securityHeaders(s.recoverPanics(s.checkHostAndOrigin(mux)))
}

// cookieName is the session cookie's name; under TLS it takes the
// __Host- prefix, which browsers accept only Secure, without a Domain and
// for Path=/.
func (s *Server) cookieName() string {
	if s.tls {
		return "__Host-agentiso_session"
	}
	return "agentiso_session"
}

type loginKey struct{}

// requireLogin passes only requests with a live session cookie; it puts
// the login's Caller (an admin) in the context for the API. A request
// that changes state must also carry the login's CSRF token; a WebSocket
// upgrade must come from the dashboard's own origin (checked already for
// every request that has an Origin; required here).
func (s *Server) requireLogin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var lg *login
		if c, err := r.Cookie(s.cookieName()); err == nil {
			lg = s.logins.get(c.Value)
		}
		if lg == nil {
			api.WriteError(w, errdefs.PermissionDeniedf("not logged in"))
			return
		}
		if isWebSocket(r) && r.Header.Get("Origin") == "" {
			api.WriteError(w, errdefs.PermissionDeniedf("origin: a WebSocket must come from the dashboard's own page"))
			return
		}
		if !safeMethod(r.Method) && !tokenEqual(r.Header.Get(CSRFHeader), lg.csrf) {
			api.WriteError(w, errdefs.PermissionDeniedf("csrf: missing or wrong %s header", CSRFHeader))
			return
		}
		// The request ends when the login does (logout, expiry), so a
		// terminal or live-updates socket does not outlive it.
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(lg.ctx, cancel)
		defer stop()
		ctx = api.WithCaller(ctx, workspace.Caller{SessionID: lg.stateID, Actor: "dashboard", Admin: true})
		ctx = context.WithValue(ctx, loginKey{}, lg)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// LoginRequest is the body of POST /api/v1/login.
type LoginRequest struct {
	Token string `json:"token"`
}

// SessionInfo answers a login and GET /api/v1/session.
type SessionInfo struct {
	LoggedIn  bool      `json:"logged_in"`
	SessionID string    `json:"session_id,omitempty"`
	CSRFToken string    `json:"csrf_token,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// Only failed attempts spend the budget; once it is spent, every
	// attempt waits, right or wrong.
	if s.failedLogins.Tokens() < 1 {
		api.WriteError(w, errdefs.RateLimitedf("token: too many failed login attempts; wait a few seconds"))
		return
	}
	var in LoginRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	if err := dec.Decode(&in); err != nil || in.Token == "" {
		s.failedLogins.Allow()
		api.WriteError(w, errdefs.Invalidf("token: required"))
		return
	}
	if !s.o.Token.Equal(in.Token) {
		s.failedLogins.Allow()
		s.record(r.Context(), workspace.Caller{Actor: "dashboard"}, "dashboard_login", errdefs.PermissionDeniedf("wrong token"), start)
		api.WriteError(w, errdefs.PermissionDeniedf("token: not the admin token"))
		return
	}
	cookie, lg, err := s.logins.create(r.Context())
	if err != nil {
		s.log.Error("creating a dashboard session", "err", err)
		api.WriteError(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(), Value: cookie, Path: "/",
		HttpOnly: true, Secure: s.tls, SameSite: http.SameSiteStrictMode,
		MaxAge: int(s.o.SessionTTL / time.Second),
	})
	s.record(r.Context(), workspace.Caller{SessionID: lg.stateID, Actor: "dashboard"}, "dashboard_login", nil, start)
	writeJSON(w, http.StatusOK, SessionInfo{LoggedIn: true, SessionID: lg.stateID, CSRFToken: lg.csrf, ExpiresAt: lg.expires})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	lg := r.Context().Value(loginKey{}).(*login)
	if c, err := r.Cookie(s.cookieName()); err == nil {
		s.logins.remove(c.Value)
	}
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.tls, SameSite: http.SameSiteStrictMode,
	})
	s.record(r.Context(), workspace.Caller{SessionID: lg.stateID, Actor: "dashboard"}, "dashboard_logout", nil, start)
	writeJSON(w, http.StatusOK, map[string]bool{"logged_out": true})
}

// session tells a page whether its cookie is logged in (an answer, not an
// error, so a fresh page load logs nothing) and gives it the CSRF token.
func (s *Server) session(w http.ResponseWriter, r *http.Request) {
	var lg *login
	if c, err := r.Cookie(s.cookieName()); err == nil {
		lg = s.logins.get(c.Value)
	}
	if lg == nil {
		writeJSON(w, http.StatusOK, SessionInfo{})
		return
	}
	writeJSON(w, http.StatusOK, SessionInfo{LoggedIn: true, SessionID: lg.stateID, CSRFToken: lg.csrf, ExpiresAt: lg.expires})
}

func (s *Server) record(ctx context.Context, c workspace.Caller, action string, err error, start time.Time) {
	if s.o.Record != nil {
		s.o.Record(ctx, api.AuditRecord{Caller: c, Action: action, Err: err, Duration: time.Since(start)})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
