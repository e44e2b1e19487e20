package config

import (
	"strings"
	"testing"
)

func TestDashboardValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Dashboard)
		want string
	}{
		{"default", func(*Dashboard) {}, ""},
		{"all addresses", func(d *Dashboard) { d.Listen = "0.0.0.0:7070" }, ""},
		{"no port", func(d *Dashboard) { d.Listen = "127.0.0.1" }, "dashboard.listen: \"127.0.0.1\" is not host:port"},
		{"hostname", func(d *Dashboard) { d.Listen = "example.com:7070" }, "dashboard.listen: host \"example.com\" is not an IP address"},
		{"port zero", func(d *Dashboard) { d.Listen = "127.0.0.1:0" }, "dashboard.listen: port \"0\" is not 1..65535"},
		{"cert without key", func(d *Dashboard) { d.TLSCertFile = "/etc/c.pem" }, "dashboard.tls_cert_file: set together with dashboard.tls_key_file"},
		{"short ttl", func(d *Dashboard) { d.SessionTTLSecs = 1 }, "dashboard.session_ttl_secs: 1 is below the minimum 60"},
		{"per-session above total", func(d *Dashboard) { d.MaxStreamsPerSession = 40 }, "dashboard.max_streams_per_session: 40 is above dashboard.max_streams_total (32)"},
		{"empty allowed host", func(d *Dashboard) { d.AllowedHosts = []string{""} }, "dashboard.allowed_hosts: entry 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c.Dashboard)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDashboardListenLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7070": true, "127.0.0.2:1": true, "[::1]:7070": true,
		"0.0.0.0:7070": false, "[::]:7070": false, "192.0.2.1:7070": false, "garbage": false,
	} {
		if got := (Dashboard{Listen: addr}).ListenLoopback(); got != want {
			t.Errorf("ListenLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
