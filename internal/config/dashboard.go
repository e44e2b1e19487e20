package config

import (
	"net"
	"strconv"
	"time"
)

// Dashboard configures the web dashboard and its REST API.
type Dashboard struct {
	Enabled        bool     `toml:"enabled" comment:"Serve the web dashboard."`
	Listen         string   `toml:"listen" comment:"host:port to listen on, host an IP address. Any address other than loopback needs an admin token: secrets.admin_token_file or $AGENTISO_ADMIN_TOKEN."`
	AllowedHosts   []string `toml:"allowed_hosts" comment:"Extra host[:port] names the dashboard may be reached by (Host header), e.g. a DNS name. Loopback names and the listen address are always allowed."`
	TLSCertFile    string   `toml:"tls_cert_file" comment:"PEM certificate: serve HTTPS (cookies are then Secure). Set with tls_key_file."`
	TLSKeyFile     string   `toml:"tls_key_file" comment:"PEM private key of tls_cert_file."`
	SessionTTLSecs int      `toml:"session_ttl_secs" comment:"Seconds a login lasts."`
	// MaxStreamsPerSession and MaxStreamsTotal bound concurrent
	// WebSocket, SSE and streamed-exec connections (finding M-15).
	MaxStreamsPerSession int `toml:"max_streams_per_session" comment:"Concurrent WebSocket, SSE and exec streams of one login."`
	MaxStreamsTotal      int `toml:"max_streams_total" comment:"Concurrent WebSocket, SSE and exec streams of all logins together."`
}

// DefaultDashboard is the dashboard's default configuration.
func DefaultDashboard() Dashboard {
	return Dashboard{
		Enabled:              true,
		Listen:               "127.0.0.1:7070",
		AllowedHosts:         []string{},
		SessionTTLSecs:       12 * 3600,
		MaxStreamsPerSession: 8,
		MaxStreamsTotal:      32,
	}
}

// SessionTTL is how long a dashboard login lasts.
func (d Dashboard) SessionTTL() time.Duration { return secs(d.SessionTTLSecs) }

// ListenLoopback reports whether Listen is a loopback address.
func (d Dashboard) ListenLoopback() bool {
	host, _, err := net.SplitHostPort(d.Listen)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (d Dashboard) validate(p *problems) {
	host, port, err := net.SplitHostPort(d.Listen)
	switch {
	case err != nil:
		p.addf("dashboard.listen", "%q is not host:port", d.Listen)
	case net.ParseIP(host) == nil:
		p.addf("dashboard.listen", "host %q is not an IP address", host)
	default:
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			p.addf("dashboard.listen", "port %q is not 1..65535", port)
		}
	}
	for i, h := range d.AllowedHosts {
		if h == "" || len(h) > 255 {
			p.addf("dashboard.allowed_hosts", "entry %d must be 1-255 bytes", i)
		}
	}
	if (d.TLSCertFile == "") != (d.TLSKeyFile == "") {
		p.addf("dashboard.tls_cert_file", "set together with dashboard.tls_key_file, or neither")
	}
	if d.TLSCertFile != "" {
		p.absPath("dashboard.tls_cert_file", d.TLSCertFile)
		p.absPath("dashboard.tls_key_file", d.TLSKeyFile)
	}
	p.intRange("dashboard.session_ttl_secs", int64(d.SessionTTLSecs), 60, 30*86400)
	p.intRange("dashboard.max_streams_per_session", int64(d.MaxStreamsPerSession), 1, 1024)
	p.intRange("dashboard.max_streams_total", int64(d.MaxStreamsTotal), 1, 4096)
	p.atMost("dashboard.max_streams_per_session", int64(d.MaxStreamsPerSession), "dashboard.max_streams_total", int64(d.MaxStreamsTotal))
}
