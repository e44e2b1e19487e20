// Package cli is the human command line's side of the REST API: a client
// for the daemon's API socket (api.sock), the tables it prints, and the
// exit codes scripts can rely on. The cobra commands in cmd/agentiso only
// wire flags to it.
package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/agentiso/agentiso/internal/api"
	"github.com/agentiso/agentiso/internal/errdefs"
)

// Client calls the REST API over the daemon's Unix socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client of the API socket at socket.
func NewClient(socket string) *Client {
	return &Client{socket: socket, http: api.UnixClient(socket)}
}

// ErrUnreachable classifies a failure to reach the daemon at all: no
// socket, nothing listening, or no permission to connect.
var ErrUnreachable = errors.New("daemon unreachable")

// unreachable says why the daemon could not be reached and what to do.
func (c *Client) unreachable(err error) error {
	return fmt.Errorf("%w: cannot connect to %s (is the daemon running? `systemctl start agentiso` or `agentiso daemon`; the socket is root's): %v",
		ErrUnreachable, c.socket, errors.Unwrap(err))
}

// Do sends a request to path (below /api/v1/) with body as JSON, and
// decodes the answer into out. An error answer becomes an error of its
// class (errdefs) with the daemon's message.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.send(ctx, method, path, query, body, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return responseError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return fmt.Errorf("decoding the daemon's answer to %s %s: %w", method, path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, query url.Values, body any, accept string) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	u := "http://agentiso" + api.Prefix + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.unreachable(err)
	}
	return resp, nil
}

// responseError turns an error answer into an error of its class.
func responseError(resp *http.Response) error {
	var b api.ErrorBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(raw, &b) != nil || b.Error.Message == "" {
		return fmt.Errorf("the daemon answered %s", resp.Status)
	}
	return errdefs.With(errdefs.ParseClass(b.Error.Class), b.Error.Message, nil)
}

// Output is one chunk of a command's output as it comes.
type Output struct {
	Stream string `json:"stream"`
	Data   string `json:"data"`
}

// ExecResult is how a command ended.
type ExecResult struct {
	ExitCode   int    `json:"exit_code"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	Truncated  bool   `json:"truncated"`
	DurationMs int64  `json:"duration_ms"`
}

// Exec runs req in workspace ref and calls onOutput with each chunk of
// output as the daemon streams it (server-sent events), then returns how
// the command ended.
func (c *Client) Exec(ctx context.Context, ref string, req api.ExecRequest, onOutput func(Output)) (*ExecResult, error) {
	resp, err := c.send(ctx, "POST", "workspaces/"+url.PathEscape(ref)+"/exec", nil, req, "text/event-stream")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return nil, responseError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	var event string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := []byte(strings.TrimPrefix(line, "data: "))
			switch event {
			case "output":
				var o Output
				if err := json.Unmarshal(data, &o); err != nil {
					return nil, fmt.Errorf("decoding output: %w", err)
				}
				onOutput(o)
			case "exit":
				var res ExecResult
				if err := json.Unmarshal(data, &res); err != nil {
					return nil, fmt.Errorf("decoding the result: %w", err)
				}
				return &res, nil
			case "error":
				var e struct{ Class, Message string }
				if err := json.Unmarshal(data, &e); err != nil {
					return nil, fmt.Errorf("decoding an error: %w", err)
				}
				return nil, errdefs.With(errdefs.ParseClass(e.Class), e.Message, nil)
			}
		}
	}
	if err := sc.Err(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errdefs.With(errdefs.Unavailable, "the daemon closed the stream before the command ended", err)
	}
	return nil, errdefs.Unavailablef("the daemon closed the stream before the command ended")
}
