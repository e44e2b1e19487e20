package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Config configures a Server.
type Config struct {
	// Listen is the address to listen on (host:port): the network bridge's
	// address, so only workspaces reach it.
	Listen string
	Tokens *Tokens
	// NewServer builds the MCP server a grant's sessions talk to, confined
	// to its workspace and team.
	NewServer func(g Grant) (*mcp.Server, error)
	Logger    *slog.Logger
}

// Server is the bridge's HTTP endpoint.
type Server struct {
	cfg  Config
	ln   net.Listener
	http *http.Server

	mu sync.Mutex
	// handlers keeps one MCP handler per workspace, so a session made
	// with one workspace's token can never be reached with another's:
	// the session IDs of one workspace are unknown to every other
	// workspace's handler.
	handlers map[string]*mcp.StreamableHTTPHandler
}

// maxRequestBytes bounds one request body.
const maxRequestBytes = 2 << 20

// Listen opens the bridge's listener; Serve then answers on it.
func Listen(cfg Config) (*Server, error) {
	if cfg.Tokens == nil || cfg.NewServer == nil {
		return nil, errors.New("mcp bridge: tokens and a server builder are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("mcp bridge: listening on %s: %w", cfg.Listen, err)
	}
	s := &Server{cfg: cfg, ln: ln, handlers: map[string]*mcp.StreamableHTTPHandler{}}
	s.http = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	return s, nil
}

// Addr is the address the bridge listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the endpoint agents connect to.
func (s *Server) URL() string { return "http://" + s.Addr() + "/mcp" }

// Serve answers requests until Close.
func (s *Server) Serve() error {
	err := s.http.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the bridge.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.http.Shutdown(ctx)
}

// ServeHTTP authenticates the request by its bearer token and hands it to
// its workspace's MCP handler. A refusal is logged with the peer's address
// only: never the token, nor any part of it (M-6).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/mcp" {
		http.NotFound(w, r)
		return
	}
	g, ok := s.authorize(r)
	if !ok {
		s.cfg.Logger.Warn("mcp bridge refused a request without a valid token", "remote", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="agentiso"`)
		http.Error(w, "a valid bridge token is required", http.StatusUnauthorized)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
	s.handler(g).ServeHTTP(w, r)
}

func (s *Server) handler(g Grant) *mcp.StreamableHTTPHandler {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.handlers[g.WorkspaceID]
	if !ok {
		id := g.WorkspaceID
		h = mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
			// The grant is looked up again: the request that opens a
			// session carries the current token of this workspace.
			cur, ok := s.authorize(r)
			if !ok || cur.WorkspaceID != id {
				return nil
			}
			srv, err := s.cfg.NewServer(cur)
			if err != nil {
				s.cfg.Logger.Error("mcp bridge: making a session's server", "workspace", id, "err", err)
				return nil
			}
			return srv
		}, &mcp.StreamableHTTPOptions{Logger: s.cfg.Logger})
		s.handlers[g.WorkspaceID] = h
	}
	return h
}

// Forget drops workspace id's handler and its sessions (it was destroyed).
func (s *Server) Forget(workspaceID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.handlers, workspaceID)
}

// authorize returns the grant of r's bearer token when the token is live
// and r comes from the token's workspace.
func (s *Server) authorize(r *http.Request) (Grant, bool) {
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return Grant{}, false
	}
	g, ok := s.cfg.Tokens.Lookup(tok)
	if !ok {
		return Grant{}, false
	}
	if g.Addr.IsValid() {
		from, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || from.Addr().Unmap() != g.Addr {
			return Grant{}, false
		}
	}
	return g, true
}

func bearer(h string) (string, bool) {
	const p = "Bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	return h[len(p):], true
}
