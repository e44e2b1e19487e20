package api

import (
	"context"
	"net"
	"net/http"
)

// UnixClient is an HTTP client whose every request goes to the API's Unix
// socket at path, whatever the URL's host: the CLI's way in. Use URLs like
// "http://agentiso/api/v1/workspaces".
func UnixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}
