package testenv

import (
	"log/slog"
	"strings"
	"testing"
)

// Logger returns a logger that writes every record, debug included, to the
// test's log, so it shows with the test that made it when that fails (or
// under -v).
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
