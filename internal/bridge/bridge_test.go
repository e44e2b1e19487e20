package bridge

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestM23_TokensAre256BitRandom: a token is 32 random bytes, one per
// workspace; a new one ends the old.
func TestM23_TokensAre256BitRandom(t *testing.T) {
	ts := NewTokens()
	seen := map[string]bool{}
	for i := range 2000 {
		tok, err := ts.Issue(Grant{WorkspaceID: fmt.Sprint("ws", i)})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(tok.Reveal())
		if err != nil || len(raw) != 32 {
			t.Fatalf("token of %d bytes (%v); want 32", len(raw), err)
		}
		if seen[tok.Reveal()] {
			t.Fatal("a token repeated")
		}
		seen[tok.Reveal()] = true
		if fmt.Sprint(tok) != "[redacted]" {
			t.Fatalf("a token prints as %q", fmt.Sprint(tok))
		}
	}
	old, _ := ts.Issue(Grant{WorkspaceID: "w"})
	cur, _ := ts.Issue(Grant{WorkspaceID: "w"})
	if _, ok := ts.Lookup(old.Reveal()); ok {
		t.Fatal("a replaced token still works")
	}
	if g, ok := ts.Lookup(cur.Reveal()); !ok || g.WorkspaceID != "w" {
		t.Fatal("the current token does not work")
	}
	ts.Revoke("w")
	if _, ok := ts.Lookup(cur.Reveal()); ok {
		t.Fatal("a revoked token still works")
	}
}

// syncBuffer is a log sink the server's goroutines may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestM6_TokensNeverLogged sends the bridge wrong, revoked, malformed and
// right tokens with every log at debug level, and finds no part of any
// token (8 characters or more) in the log.
func TestM6_TokensNeverLogged(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts := NewTokens()
	srv := serveTestBridge(t, Config{Tokens: ts, Logger: log})

	good, _ := ts.Issue(Grant{WorkspaceID: "a"})
	revoked, _ := ts.Issue(Grant{WorkspaceID: "b"})
	ts.Revoke("b")
	// Same prefix as the good token, wrong tail: a log of a prefix would
	// show the good token's first characters.
	g := good.Reveal()
	nearMiss := g[:20] + strings.Repeat("A", len(g)-20)
	wrong := []string{nearMiss, revoked.Reveal(), "short", g + "x", strings.Repeat("Z", 200)}
	for _, tok := range wrong {
		if got := initializeStatus(t, srv.URL(), "Bearer "+tok); got != http.StatusUnauthorized {
			t.Fatalf("token %.4s...: status %d; want 401", tok, got)
		}
	}
	// The right token opens a session.
	c := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil)
	sess, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: srv.URL(),
		HTTPClient: &http.Client{Transport: bearerTransport(g)}}, nil)
	if err != nil {
		t.Fatalf("the right token: %v", err)
	}
	sess.Close()

	out := logs.String()
	if !strings.Contains(out, "without a valid token") {
		t.Fatalf("refusals were not logged at all:\n%s", out)
	}
	for _, tok := range append(wrong, g) {
		for i := 0; i+8 <= len(tok); i++ {
			if strings.Contains(out, tok[i:i+8]) && !strings.Contains(tok[i:i+8], "AAAA") && !strings.Contains(tok[i:i+8], "ZZZZ") {
				t.Fatalf("the log holds part of a token (%d..%d):\n%s", i, i+8, out)
			}
		}
	}
}

// bearerTransport adds the bridge token to every request.
type bearerTransport string

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// TestL5_BridgeRequiresToken: every request to the bridge needs a valid
// bearer token before any MCP handling: none, another scheme or an empty
// token is refused, and no server is built for it.
func TestL5_BridgeRequiresToken(t *testing.T) {
	built := 0
	ts := NewTokens()
	srv := serveTestBridge(t, Config{Tokens: ts, NewServer: func(g Grant) (*mcp.Server, error) {
		built++
		return mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil), nil
	}})
	good, _ := ts.Issue(Grant{WorkspaceID: "a"})
	for _, h := range []string{"", "Basic " + good.Reveal(), "Bearer ", "Bearer" + good.Reveal(), good.Reveal()} {
		if got := initializeStatus(t, srv.URL(), h); got != http.StatusUnauthorized {
			t.Errorf("Authorization %.12q: status %d; want 401", h, got)
		}
	}
	if built != 0 {
		t.Fatalf("%d servers built for unauthenticated requests", built)
	}
}

// TestM5_TokenBoundToItsWorkspaceAddress: a token works only in requests
// from its workspace's address; the same token from any other address (a
// fork that resumed the workspace's memory, a peer it was handed to) is
// refused like a wrong one.
func TestM5_TokenBoundToItsWorkspaceAddress(t *testing.T) {
	ts := NewTokens()
	srv := serveTestBridge(t, Config{Tokens: ts})
	// Requests come from 127.0.0.1.
	here, _ := ts.Issue(Grant{WorkspaceID: "here", Addr: netip.MustParseAddr("127.0.0.1")})
	elsewhere, _ := ts.Issue(Grant{WorkspaceID: "elsewhere", Addr: netip.MustParseAddr("10.99.0.7")})
	status := func(tok string) int {
		return initializeStatus(t, srv.URL(), "Bearer "+tok)
	}
	if got := status(elsewhere.Reveal()); got != http.StatusUnauthorized {
		t.Fatalf("a token used from another address: status %d; want 401", got)
	}
	if got := status(here.Reveal()); got != http.StatusOK {
		t.Fatalf("a token used from its own address: status %d; want 200", got)
	}
}

// serveTestBridge serves cfg on a free loopback port until the test ends;
// without NewServer every session gets an empty MCP server.
func serveTestBridge(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.NewServer == nil {
		cfg.NewServer = func(Grant) (*mcp.Server, error) {
			return mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil), nil
		}
	}
	srv, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	return srv
}

// initializeStatus posts an MCP initialize request to url with the given
// Authorization header (none when empty) and returns the HTTP status.
func initializeStatus(t *testing.T, url, authorization string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`))
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
