package dashboard

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agentiso/agentiso/internal/api"
	"github.com/agentiso/agentiso/internal/secret"
)

const listen = "127.0.0.1:7070"

// C-1: no CORS. A request from another origin is refused before it does
// anything, and no response ever carries an Access-Control-* header.
func TestC1_CrossOriginRequestsRefused(t *testing.T) {
	s := newTestServer(t, listen)
	cookie, csrf := s.login(t)

	ok := s.do(s.authed("POST", "/api/v1/workspaces", `{"name":"same-origin"}`, cookie, csrf))
	if ok.Code != http.StatusOK {
		t.Fatalf("same-origin create: %d %s", ok.Code, ok.Body)
	}

	for _, tc := range []struct {
		name string
		mod  func(r *http.Request)
	}{
		{"foreign origin", func(r *http.Request) { r.Header.Set("Origin", "http://evil.example") }},
		{"other port", func(r *http.Request) { r.Header.Set("Origin", "http://127.0.0.1:8080") }},
		{"null origin", func(r *http.Request) { r.Header.Set("Origin", "null") }},
		{"cross-site fetch metadata", func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }},
		{"rebound host name", func(r *http.Request) {
			r.Host = "evil.example:7070"
			r.Header.Set("Origin", "http://evil.example:7070")
		}},
		{"no origin on a state change", func(r *http.Request) { r.Header.Del("Origin") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.authed("POST", "/api/v1/workspaces", `{"name":"cross-origin"}`, cookie, csrf)
			tc.mod(r)
			w := s.do(r)
			if w.Code != http.StatusForbidden {
				t.Fatalf("status %d, want 403: %s", w.Code, w.Body)
			}
			assertNoCORS(t, w.Header())
		})
	}
	preflight := s.req("OPTIONS", "/api/v1/workspaces", "")
	preflight.Header.Set("Origin", "http://evil.example")
	preflight.Header.Set("Access-Control-Request-Method", "POST")
	w := s.do(preflight)
	if w.Code < 400 {
		t.Errorf("preflight answered %d, want a refusal", w.Code)
	}
	assertNoCORS(t, w.Header())
	assertNoCORS(t, ok.Header())
	if got := s.ws.created; len(got) != 1 || got[0] != "same-origin" {
		t.Errorf("workspaces created %v, want only the same-origin one", got)
	}
}

func assertNoCORS(t *testing.T, h http.Header) {
	t.Helper()
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			t.Errorf("response has CORS header %s: %q", k, h.Get(k))
		}
	}
}

// H-1: a dashboard on a non-loopback address has no token unless one is
// configured, and then it does not start; on loopback a token is
// generated into a root-only file.
func TestH1_NonLoopbackNeedsAdminToken(t *testing.T) {
	dir := t.TempDir()
	none := secret.Secret{}

	_, _, _, err := LoadToken(none, dir, false)
	if err == nil || !strings.Contains(err.Error(), "secrets.admin_token_file") {
		t.Fatalf("non-loopback without a token: %v, want a refusal naming secrets.admin_token_file", err)
	}
	if _, err := New(Options{Listen: "0.0.0.0:7070", API: http.NotFoundHandler(), Sessions: nil}); err == nil {
		t.Fatal("New without a token succeeded")
	}

	tok, src, path, err := LoadToken(none, dir, true)
	if err != nil || src != FromGenerated {
		t.Fatalf("loopback without a token: %v, %s", err, src)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated token file %s: %v, mode %v; want 0600", path, err, fi.Mode())
	}
	b, _ := os.ReadFile(path)
	if !tok.Equal(strings.TrimSpace(string(b))) || len(strings.TrimSpace(string(b))) < 40 {
		t.Fatalf("generated token does not match its file or is short")
	}
	again, _, _, err := LoadToken(none, dir, true)
	if err != nil || !again.Equal(strings.TrimSpace(string(b))) {
		t.Fatalf("a second start did not keep the generated token: %v", err)
	}
	// A generated file someone made readable is refused, not replaced.
	os.Chmod(path, 0o644)
	if _, _, _, err := LoadToken(none, dir, true); err == nil || !strings.Contains(err.Error(), "chmod 0600") {
		t.Fatalf("world-readable generated token file: %v, want a refusal", err)
	}

	// A configured token wins on any address; a short one is refused.
	tok, src, _, err = LoadToken(secret.New(testToken), dir, false)
	if err != nil || src != FromConfig || !tok.Equal(testToken) || tok.Equal(strings.TrimSpace(string(b))) {
		t.Fatalf("configured token: %v, %s", err, src)
	}
	if _, _, _, err := LoadToken(secret.New("short"), dir, true); err == nil {
		t.Fatal("a 5-character token was accepted")
	}
}

// H-2 (and M-24): every response carries the security headers and the
// CSP: pages, static files, API answers, errors, refusals.
func TestH2_SecurityHeadersOnEveryResponse(t *testing.T) {
	s := newTestServer(t, listen)
	cookie, csrf := s.login(t)
	foreign := s.req("GET", "/", "")
	foreign.Header.Set("Origin", "http://evil.example")
	for _, tc := range []struct {
		name   string
		r      *http.Request
		status int
	}{
		{"page", s.req("GET", "/", ""), 200},
		{"script", s.req("GET", "/assets/app.js", ""), 200},
		{"stylesheet", s.req("GET", "/assets/style.css", ""), 200},
		{"missing file", s.req("GET", "/no/such/file", ""), 404},
		{"api without login", s.req("GET", "/api/v1/workspaces", ""), 401},
		{"api", s.authed("GET", "/api/v1/workspaces", "", cookie, ""), 200},
		{"api error", s.authed("GET", "/api/v1/workspaces/other", "", cookie, ""), 404},
		{"unknown route", s.authed("GET", "/api/v1/nope", "", cookie, ""), 404},
		{"bad body", s.authed("POST", "/api/v1/workspaces", `{`, cookie, csrf), 400},
		{"wrong token", s.req("POST", "/api/v1/login", `{"token":"wrong-token-wrong-token"}`), 403},
		{"cross origin", foreign, 403},
		{"method not allowed", s.req("PUT", "/", "x"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := s.do(tc.r)
			if tc.status != 0 && w.Code != tc.status {
				t.Errorf("status %d, want %d (%s)", w.Code, tc.status, w.Body)
			}
			h := w.Header()
			for k, want := range map[string]string{
				"Content-Security-Policy": ContentSecurityPolicy,
				"X-Frame-Options":         "DENY",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
			} {
				if got := h.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if ct := h.Get("Content-Type"); ct == "" {
				t.Error("no Content-Type (nosniff needs one)")
			}
			assertNoCORS(t, h)
		})
	}
	if ct := s.do(s.req("GET", "/assets/app.js", "")).Header().Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("script served as %q", ct)
	}
}

// M-24: the CSP allows scripts only from the dashboard's own files: no
// inline script, no eval, no other origin; nothing may frame the page.
func TestM24_CSPForbidsInlineScript(t *testing.T) {
	directives := map[string]string{}
	for _, d := range strings.Split(ContentSecurityPolicy, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			directives[f[0]] = strings.Join(f[1:], " ")
		}
	}
	for k, want := range map[string]string{
		"default-src": "'none'", "script-src": "'self'", "frame-ancestors": "'none'",
		"base-uri": "'none'", "connect-src": "'self'",
	} {
		if directives[k] != want {
			t.Errorf("%s = %q, want %q", k, directives[k], want)
		}
	}
	// The embedded page, built or the placeholder, has no inline script:
	// every <script> loads a file.
	s := newTestServer(t, listen, func(o *Options, _ *api.Options) { o.Assets = Assets() })
	body := s.do(s.req("GET", "/", "")).Body.String()
	for _, m := range regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`).FindAllStringSubmatch(body, -1) {
		if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("inline script in the page: %q", m[0])
		}
	}
	if strings.Contains(body, "javascript:") || regexp.MustCompile(`(?i)\son[a-z]+=`).MatchString(body) {
		t.Error("the page has an inline event handler or javascript: URL")
	}
}

// H-3: a WebSocket upgrade needs a live session and the dashboard's own
// Origin.
func TestH3_WebSocketNeedsSessionAndOrigin(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, ln.Addr().String())
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	cookie, _ := s.login(t)
	gone, goneCSRF := s.login(t)
	if w := s.do(s.authed("POST", "/api/v1/logout", "", gone, goneCSRF)); w.Code != 200 {
		t.Fatalf("logout: %d", w.Code)
	}

	dial := func(ck *http.Cookie, origin string) (*websocket.Conn, *http.Response, error) {
		h := http.Header{}
		if ck != nil {
			h.Add("Cookie", ck.Name+"="+ck.Value)
		}
		if origin != "" {
			h.Set("Origin", origin)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/api/v1/events", &websocket.DialOptions{HTTPHeader: h})
	}
	for _, tc := range []struct {
		name   string
		cookie *http.Cookie
		origin string
		status int
	}{
		{"no session", nil, s.origin, 401},
		{"foreign origin", cookie, "http://evil.example", 403},
		{"no origin", cookie, "", 403},
		{"logged-out cookie", gone, s.origin, 401},
		{"forged cookie", &http.Cookie{Name: cookie.Name, Value: "AAAA" + cookie.Value[4:]}, s.origin, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, resp, err := dial(tc.cookie, tc.origin)
			if err == nil {
				c.CloseNow()
				t.Fatal("the upgrade succeeded")
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("response %v, want status %d", resp, tc.status)
			}
		})
	}
	c, _, err := dial(cookie, s.origin)
	if err != nil {
		t.Fatalf("same-origin upgrade with a session: %v", err)
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, msg, err := c.Read(ctx)
	if err != nil || !strings.Contains(string(msg), `"visible"`) {
		t.Fatalf("first event %s, %v; want the workspace list", msg, err)
	}
	// Logging out ends the login's open sockets.
	s.logins.remove(cookie.Value)
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("the socket outlived its login")
			}
			break
		}
	}
}

// H-4: the login page's exchange: the right token gives an HttpOnly,
// SameSite=Strict cookie (Secure with a __Host- name under TLS); no
// token, a wrong one, or one with the right prefix gives nothing.
func TestH4_LoginExchangesTokenForHardenedCookie(t *testing.T) {
	s := newTestServer(t, listen)
	for _, body := range []string{`{}`, `{"token":""}`, `{"token":"wrong"}`, `{"token":"` + testToken[:len(testToken)-1] + `"}`, `{"token":"` + testToken + `x"}`, `not json`} {
		w := s.do(s.req("POST", "/api/v1/login", body))
		if w.Code == http.StatusOK || len(w.Result().Cookies()) != 0 {
			t.Errorf("login with %s: %d, cookies %v", body, w.Code, w.Result().Cookies())
		}
	}
	w := s.do(s.req("POST", "/api/v1/login", `{"token":"`+testToken+`"}`))
	setCookie := w.Header().Get("Set-Cookie")
	for _, want := range []string{"agentiso_session=", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(setCookie, want) {
			t.Errorf("Set-Cookie %q lacks %q", setCookie, want)
		}
	}
	if strings.Contains(setCookie, "Secure") {
		t.Errorf("Set-Cookie %q is Secure over plain HTTP (the browser would drop it)", setCookie)
	}
	cookie := w.Result().Cookies()[0]
	if r := s.do(s.authed("GET", "/api/v1/session", "", cookie, "")); r.Code != 200 || !strings.Contains(r.Body.String(), `"logged_in":true`) {
		t.Fatalf("session with the cookie: %d %s", r.Code, r.Body)
	}
	if r := s.do(s.req("GET", "/api/v1/session", "")); r.Code != 200 || r.Body.String() != "{\"logged_in\":false}\n" {
		t.Fatalf("session without a cookie: %d %s", r.Code, r.Body)
	}
	cookie2, csrf := s.login(t)
	if r := s.do(s.authed("POST", "/api/v1/logout", "", cookie2, csrf)); r.Code != 200 {
		t.Fatalf("logout: %d %s", r.Code, r.Body)
	}
	if r := s.do(s.authed("GET", "/api/v1/workspaces", "", cookie2, "")); r.Code != http.StatusUnauthorized {
		t.Errorf("after logout the cookie still works: %d", r.Code)
	}
	if r := s.do(s.authed("GET", "/api/v1/workspaces", "", cookie, "")); r.Code != 200 {
		t.Errorf("another login's logout ended this one: %d", r.Code)
	}

	// Under TLS.
	certFile, keyFile := selfSignedCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, ln.Addr().String(), func(o *Options, _ *api.Options) {
		o.TLSCertFile, o.TLSKeyFile = certFile, keyFile
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.ServeListener(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	base := "https://" + ln.Addr().String()
	req, _ := http.NewRequest("POST", base+"/api/v1/login", strings.NewReader(`{"token":"`+testToken+`"}`))
	req.Header.Set("Origin", base)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	setCookie = resp.Header.Get("Set-Cookie")
	for _, want := range []string{"__Host-agentiso_session=", "Secure", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(setCookie, want) {
			t.Errorf("TLS Set-Cookie %q lacks %q", setCookie, want)
		}
	}
	if resp.Header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS under TLS")
	}
	u, _ := url.Parse(base)
	if len(jar.Cookies(u)) != 1 {
		t.Fatalf("the client kept %d cookies", len(jar.Cookies(u)))
	}
	resp, err = client.Get(base + "/api/v1/workspaces")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("TLS API call with the cookie: %d", resp.StatusCode)
	}
}

func selfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// H-5: the token comparison does not leak how much of a guess is right.
// A guess that shares all but its last byte with a long token takes as
// long to refuse as one that differs in its first byte (a plain == would
// take ~100x longer for the first on this size).
func TestH5_TokenComparedInConstantTime(t *testing.T) {
	long := strings.Repeat("k", 1<<20)
	tok, err := NewToken(long)
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Equal(long) || tok.Equal(long[:len(long)-1]) || tok.Equal(long+"k") || tok.Equal("") {
		t.Fatal("Equal gives wrong answers")
	}
	nearly := long[:len(long)-1] + "x"
	far := "x" + long[1:]
	// Interleaved, so both guesses see the same machine load.
	median := func(ds []time.Duration) time.Duration {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	var ratios []float64
	for round := 0; round < 3; round++ {
		var near, away []time.Duration
		for i := 0; i < 41; i++ {
			start := time.Now()
			tok.Equal(nearly)
			near = append(near, time.Since(start))
			start = time.Now()
			tok.Equal(far)
			away = append(away, time.Since(start))
		}
		ratios = append(ratios, float64(median(near))/float64(median(away)))
	}
	sort.Float64s(ratios)
	if r := ratios[1]; r > 2 || r < 0.5 {
		t.Errorf("refusing a nearly-right guess takes %.2fx as long as a wrong one; want about 1", r)
	}
	if s := tok.String() + tok.GoString(); strings.Contains(s, "k") {
		t.Errorf("Token prints as %q", s)
	}
	b, _ := json.Marshal(struct{ T Token }{tok})
	if strings.Contains(string(b), "kkk") {
		t.Errorf("Token marshals as %s", b)
	}
}

// M-13: every state change needs the login's CSRF token, not just the
// cookie (which a browser would attach to a forged request).
func TestM13_CSRFTokenRequiredOnStateChanges(t *testing.T) {
	s := newTestServer(t, listen)
	cookie, csrf := s.login(t)
	_, otherCSRF := s.login(t)
	for _, tc := range []struct {
		method, path, body string
		// with is the status with the right token: 200, or 503 for
		// routes this test server has no backend for (snapshots, vault,
		// teams, networking).
		with int
	}{
		{"POST", "/api/v1/workspaces", `{"name":"x"}`, 200},
		{"DELETE", "/api/v1/workspaces/visible", "", 200},
		{"POST", "/api/v1/workspaces/visible/stop", "", 200},
		{"POST", "/api/v1/workspaces/visible/exec", `{"command":"id"}`, 200},
		{"PUT", "/api/v1/workspaces/visible/files", `{"path":"/a","content":"b"}`, 200},
		{"POST", "/api/v1/workspaces/visible/snapshots", `{"name":"s"}`, 503},
		{"POST", "/api/v1/workspaces/visible/snapshots/s/restore", "", 503},
		{"DELETE", "/api/v1/workspaces/visible/snapshots/s", "", 503},
		{"POST", "/api/v1/workspaces/visible/fork", `{"snapshot_name":"s"}`, 503},
		{"PUT", "/api/v1/vault/note", `{"path":"a.md","content":"x"}`, 503},
		{"DELETE", "/api/v1/vault/note?path=a.md", "", 503},
		{"POST", "/api/v1/teams", `{"name":"t","roles":[{"name":"a","role":"dev"}]}`, 503},
		{"DELETE", "/api/v1/teams/t", "", 503},
		{"POST", "/api/v1/teams/t/messages", `{"to":"*","content":"hi"}`, 503},
		{"POST", "/api/v1/teams/t/tasks", `{"id":"a","title":"A"}`, 503},
		{"POST", "/api/v1/teams/t/tasks/a/move", `{"status":"done"}`, 503},
		{"POST", "/api/v1/workspaces/visible/port_forwards", `{"guest_port":80}`, 503},
		{"DELETE", "/api/v1/workspaces/visible/port_forwards/80", "", 503},
		{"PATCH", "/api/v1/workspaces/visible/network", `{"allow_internet":true}`, 503},
		{"POST", "/api/v1/logout", "", 0},
	} {
		for name, token := range map[string]string{"missing": "", "wrong": "AAAA" + csrf[4:], "another login's": otherCSRF} {
			w := s.do(s.authed(tc.method, tc.path, tc.body, cookie, token))
			if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "csrf") {
				t.Errorf("%s %s with a %s CSRF token: %d %s", tc.method, tc.path, name, w.Code, w.Body)
			}
		}
		if tc.path == "/api/v1/logout" {
			continue
		}
		w := s.do(s.authed(tc.method, tc.path, tc.body, cookie, csrf))
		if w.Code != tc.with {
			t.Errorf("%s %s with the CSRF token: %d %s, want %d", tc.method, tc.path, w.Code, w.Body, tc.with)
		}
	}
	if len(s.ws.created) != 1 {
		t.Errorf("created %v, want exactly the one with the token", s.ws.created)
	}
}

// M-15: long-lived streams are capped per login and for all logins.
func TestM15_StreamCapsPerSessionAndGlobal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, ln.Addr().String(), func(_ *Options, a *api.Options) { a.Streams = api.NewStreamLimiter(2, 3) })
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	a, _ := s.login(t)
	b, bcsrf := s.login(t)
	open := func(c *http.Cookie) (*websocket.Conn, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, resp, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/api/v1/events", &websocket.DialOptions{
			HTTPHeader: http.Header{"Cookie": {c.Name + "=" + c.Value}, "Origin": {s.origin}},
		})
		if err != nil {
			if resp == nil {
				t.Fatalf("dial: %v", err)
			}
			return nil, resp.StatusCode
		}
		t.Cleanup(func() { conn.CloseNow() })
		return conn, 101
	}
	a1, st := open(a)
	if st != 101 {
		t.Fatalf("first stream: %d", st)
	}
	if _, st := open(a); st != 101 {
		t.Fatalf("second stream: %d", st)
	}
	if _, st := open(a); st != http.StatusTooManyRequests {
		t.Fatalf("third stream of one login: %d, want 429", st)
	}
	if _, st := open(b); st != 101 {
		t.Fatalf("another login's first stream: %d", st)
	}
	if _, st := open(b); st != http.StatusTooManyRequests {
		t.Fatalf("a fourth stream in all: %d, want 429", st)
	}
	// Streamed exec (SSE) counts too.
	r, _ := http.NewRequest("POST", srv.URL+"/api/v1/workspaces/visible/exec", strings.NewReader(`{"command":"id"}`))
	r.Header.Set("Origin", s.origin)
	r.Header.Set("Accept", "text/event-stream")
	r.Header.Set(CSRFHeader, bcsrf)
	r.AddCookie(b)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "max_streams_total") {
		t.Fatalf("exec stream over the global cap: %d %s", resp.StatusCode, body)
	}
	a1.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, st := open(b); st == 101 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed stream's slot never came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// L-16 on the dashboard path: errors never echo names from the request,
// whether a workspace, a route or a body.
func TestL16_DashboardErrorsEchoNothing(t *testing.T) {
	s := newTestServer(t, listen)
	cookie, csrf := s.login(t)
	const secret = "secret-name-4711"
	for _, r := range []*http.Request{
		s.authed("GET", "/api/v1/workspaces/"+secret, "", cookie, ""),
		s.authed("DELETE", "/api/v1/workspaces/"+secret, "", cookie, csrf),
		s.authed("POST", "/api/v1/workspaces/"+secret+"/start", "", cookie, csrf),
		s.authed("GET", "/api/v1/workspaces/"+secret+"/logs", "", cookie, ""),
		s.authed("GET", "/api/v1/"+secret, "", cookie, ""),
		s.authed("GET", "/"+secret, "", cookie, ""),
		s.authed("POST", "/api/v1/workspaces", `{"`+secret+`":1}`, cookie, csrf),
		s.authed("POST", "/api/v1/workspaces", `{"name":`+secret+`}`, cookie, csrf),
		s.authed("GET", "/api/v1/workspaces?state="+secret, "", cookie, ""),
	} {
		w := s.do(r)
		if w.Code < 400 {
			t.Errorf("%s %s: %d, want an error", r.Method, r.URL, w.Code)
		}
		if strings.Contains(w.Body.String(), secret) || strings.Contains(w.Header().Get("Location"), secret) {
			t.Errorf("%s %s: the answer echoes the name: %s", r.Method, r.URL, w.Body)
		}
	}
}
