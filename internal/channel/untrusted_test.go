package channel_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// hostileGuest answers every request with the messages answer returns,
// whatever was asked: a guest the host must not trust.
func hostileGuest(t *testing.T, answer func(req protocol.Message) []protocol.Message) *channel.Client {
	t.Helper()
	hostConn, guestConn := socketPair(t)
	t.Cleanup(func() { guestConn.Close() })
	go func() {
		// The guest's side of the handshake, then a yamux server.
		hello := make([]byte, protocol.HelloSize)
		if _, err := io.ReadFull(guestConn, hello); err != nil {
			return
		}
		var n protocol.Nonce
		copy(n[:], hello[len(hello)-len(n):])
		guestConn.Write(append([]byte("junk before the hello is skipped"), protocol.Hello(protocol.GuestHelloKind, n)...))
		cfg := yamux.DefaultConfig()
		cfg.LogOutput = io.Discard
		sess, err := yamux.Server(guestConn, cfg)
		if err != nil {
			return
		}
		defer sess.Close()
		for {
			st, err := sess.AcceptStream()
			if err != nil {
				return
			}
			go func() {
				defer st.Close()
				req, err := protocol.Read(st)
				if err != nil {
					return
				}
				for _, m := range answer(req) {
					if err := protocol.Write(st, m); err != nil {
						return
					}
				}
				st.SetReadDeadline(time.Now().Add(5 * time.Second))
				io.Copy(io.Discard, st)
			}()
		}
	}()
	c, err := channel.New(hostConn, channel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestHostBoundsOutputOfAGuestThatIgnoresTheLimit(t *testing.T) {
	c := hostileGuest(t, func(protocol.Message) []protocol.Message {
		var out []protocol.Message
		for range 5 {
			out = append(out, &protocol.Output{Stream: protocol.Stdout, Data: strings.Repeat("€", 100)})
		}
		return append(out, &protocol.Exit{}) // and claims nothing was truncated
	})
	var seen int
	res, err := c.Exec(testCtx(t), protocol.Exec{Argv: []string{"x"}, MaxOutputBytes: 1000}, func(_ protocol.Stream, s string) { seen += len(s) })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stdout) != 999 || !res.Truncated || seen != 999 {
		t.Errorf("kept %d bytes (callback saw %d), truncated %v; want 999 (whole characters within 1000) and the flag", len(res.Stdout), seen, res.Truncated)
	}
}

func TestHostBoundsAFileReadOfAGuestThatIgnoresTheLimit(t *testing.T) {
	c := hostileGuest(t, func(protocol.Message) []protocol.Message {
		return []protocol.Message{&protocol.FileInfo{Size: 100}, &protocol.Data{Bytes: make([]byte, 60)}, &protocol.Data{Bytes: make([]byte, 60)}, &protocol.DataEnd{}}
	})
	var got strings.Builder
	_, err := c.ReadFile(testCtx(t), "/f", 0, 100, &got)
	if err == nil || !strings.Contains(err.Error(), "more than the 100 bytes") {
		t.Errorf("ReadFile from a guest sending too much: %v", err)
	}
	if got.Len() > 100 {
		t.Errorf("%d bytes passed on, more than the limit", got.Len())
	}
}

func TestHostRefusesAnswersOutOfProtocol(t *testing.T) {
	c := hostileGuest(t, func(req protocol.Message) []protocol.Message {
		switch req.(type) {
		case *protocol.Ping:
			return []protocol.Message{&protocol.Pong{Version: protocol.Version + 1}}
		default:
			return []protocol.Message{&protocol.FileInfo{}}
		}
	})
	if _, err := c.Ping(testCtx(t)); !errdefs.Is(err, errdefs.Unavailable) || !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("ping of a guest of another protocol version: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Exec(ctx, protocol.Exec{Argv: []string{"x"}, MaxOutputBytes: 1}, nil); err == nil || !strings.Contains(err.Error(), "broke the protocol") {
		t.Errorf("exec answered with file_info: %v", err)
	}
	if err := c.Configure(ctx, protocol.Configure{Hostname: "h"}); err == nil || !strings.Contains(err.Error(), "unexpected file_info") {
		t.Errorf("configure answered with file_info: %v", err)
	}
}
