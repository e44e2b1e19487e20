package state

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentiso/agentiso/internal/errdefs"
)

func TestAuditAppendAndList(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var appended []AuditEntry
	for i, e := range []AuditEntry{
		{SessionID: "s1", Actor: "mcp:s1", Action: "workspace_create", Target: "w1", Result: AuditOK, DurationMs: 2100, Detail: json.RawMessage(`{"vcpus":1}`)},
		{SessionID: "s2", Actor: "mcp:s2", Action: "exec", Target: "w2", Result: AuditError, ErrorClass: "timeout", DurationMs: 120000},
		{Actor: "dashboard", Action: "workspace_stop", Target: "w1", Result: AuditOK},
		{SessionID: "s1", Actor: "mcp:s1", Action: "workspace_destroy", Target: "w1", Result: AuditOK},
	} {
		e.Time = base.Add(time.Duration(i) * time.Minute)
		got, err := s.AppendAudit(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID == 0 || (len(appended) > 0 && got.ID <= appended[len(appended)-1].ID) {
			t.Fatalf("ID %d does not increase", got.ID)
		}
		appended = append(appended, got)
	}
	newestFirst := func(idx ...int) []AuditEntry {
		var out []AuditEntry
		for _, i := range idx {
			out = append(out, appended[i])
		}
		return out
	}
	tests := []struct {
		name   string
		filter AuditFilter
		want   []AuditEntry
	}{
		{"all", AuditFilter{}, newestFirst(3, 2, 1, 0)},
		{"session", AuditFilter{Session: "s1"}, newestFirst(3, 0)},
		{"since", AuditFilter{Since: base.Add(2 * time.Minute)}, newestFirst(3, 2)},
		{"since and session", AuditFilter{Since: base.Add(time.Minute), Session: "s1"}, newestFirst(3)},
		{"limit", AuditFilter{Limit: 2}, newestFirst(3, 2)},
		{"nothing", AuditFilter{Session: "nobody"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ListAudit(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestAuditDefaultTimeAndLimits(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	before := time.Now()
	for i := 0; i < DefaultAuditLimit+5; i++ {
		if _, err := s.AppendAudit(ctx, AuditEntry{Actor: "cli", Action: fmt.Sprint("a", i), Result: AuditOK}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ListAudit(ctx, AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != DefaultAuditLimit {
		t.Errorf("ListAudit with no limit returned %d, want %d", len(got), DefaultAuditLimit)
	}
	if got[0].Time.Before(before) || got[0].Time.After(time.Now()) {
		t.Errorf("defaulted Time %v is not now", got[0].Time)
	}
	got, err = s.ListAudit(ctx, AuditFilter{Limit: MaxAuditLimit * 10})
	if err != nil || len(got) != DefaultAuditLimit+5 {
		t.Errorf("ListAudit with a huge limit returned %d, %v", len(got), err)
	}
}

func TestAuditBounds(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	big := json.RawMessage(`"` + strings.Repeat("x", MaxAuditDetailBytes) + `"`)
	e, err := s.AppendAudit(ctx, AuditEntry{Actor: "cli", Action: "exec", Target: strings.Repeat("t", 1000), Result: AuditOK, Detail: big})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Target) != maxAuditFieldBytes {
		t.Errorf("Target kept %d bytes, want %d", len(e.Target), maxAuditFieldBytes)
	}
	var marker struct {
		Truncated bool `json:"truncated"`
		Bytes     int  `json:"bytes"`
	}
	if err := json.Unmarshal(e.Detail, &marker); err != nil || !marker.Truncated || marker.Bytes != len(big) {
		t.Errorf("oversized Detail stored as %s, want a truncation marker", e.Detail)
	}

	for _, bad := range []AuditEntry{
		{Action: "exec", Result: AuditOK},
		{Actor: "cli", Result: AuditOK},
		{Actor: "cli", Action: "exec", Result: "maybe"},
		{Actor: "cli", Action: "exec", Result: AuditOK, Detail: json.RawMessage(`{not json`)},
	} {
		_, err := s.AppendAudit(ctx, bad)
		wantClass(t, err, errdefs.Invalid)
	}
}

// The database itself refuses to change or remove audit entries.
func TestAuditIsAppendOnly(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	if _, err := s.AppendAudit(ctx, AuditEntry{Actor: "cli", Action: "exec", Result: AuditError}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE audit_log SET result = 'ok'`,
		`DELETE FROM audit_log`,
	} {
		if _, err := s.w.ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want the append-only refusal", q, err)
		}
	}
	got, err := s.ListAudit(ctx, AuditFilter{})
	if err != nil || len(got) != 1 || got[0].Result != AuditError {
		t.Errorf("audit log changed: %+v, %v", got, err)
	}
}
