package state

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentiso/agentiso/internal/errdefs"
)

func TestSessionLifecycle(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	sess, err := s.CreateSession(ctx, Session{UID: 1000, PID: 99, Transport: "stdio"})
	if err != nil {
		t.Fatal(err)
	}
	if sess.ID == "" || sess.CreatedAt.IsZero() || !sess.LastSeen.Equal(sess.CreatedAt) || !sess.Active() {
		t.Fatalf("CreateSession = %+v", sess)
	}
	got, err := s.GetSession(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sess, got); diff != "" {
		t.Errorf("GetSession (-want +got):\n%s", diff)
	}

	time.Sleep(2 * time.Millisecond)
	if err := s.TouchSession(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	touched, _ := s.GetSession(ctx, sess.ID)
	if !touched.LastSeen.After(sess.LastSeen) {
		t.Errorf("LastSeen %v not after %v", touched.LastSeen, sess.LastSeen)
	}

	if err := s.EndSession(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	ended, _ := s.GetSession(ctx, sess.ID)
	if ended.Active() {
		t.Fatal("session still active after EndSession")
	}
	// Ending again changes nothing; touching an ended session is refused.
	if err := s.EndSession(ctx, sess.ID); err != nil {
		t.Errorf("second EndSession = %v, want nil", err)
	}
	if again, _ := s.GetSession(ctx, sess.ID); !again.EndedAt.Equal(ended.EndedAt) {
		t.Errorf("second EndSession moved EndedAt %v -> %v", ended.EndedAt, again.EndedAt)
	}
	wantClass(t, s.TouchSession(ctx, sess.ID), errdefs.Conflict)
}

func TestSessionIDsAreUnique(t *testing.T) {
	s := newStore(t)
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		id := newSession(t, s).ID
		if seen[id] {
			t.Fatalf("session id %s assigned twice", id)
		}
		seen[id] = true
	}
}

func TestSessionErrors(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	const missing = "4f1b9f4e-0000-4000-8000-000000000000"
	_, err := s.GetSession(ctx, missing)
	wantClass(t, err, errdefs.NotFound)
	if got := errdefs.Public(err); got != "session_id: no such session" {
		t.Errorf("message = %q", got)
	}
	wantClass(t, s.TouchSession(ctx, missing), errdefs.NotFound)
	wantClass(t, s.EndSession(ctx, missing), errdefs.NotFound)

	for _, bad := range []Session{
		{Transport: ""},
		{Transport: strings.Repeat("x", 65)},
		{Transport: "stdio", UID: -1},
		{Transport: "stdio", ID: "chosen-by-client"},
	} {
		_, err := s.CreateSession(ctx, bad)
		wantClass(t, err, errdefs.Invalid)
	}
	first := newSession(t, s)
	_, err = s.CreateSession(ctx, Session{ID: first.ID, Transport: "stdio"})
	wantClass(t, err, errdefs.Conflict)
}

func TestListSessions(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	a, b, c := newSession(t, s), newSession(t, s), newSession(t, s)
	if err := s.EndSession(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	ids := func(ss []Session) []string {
		var out []string
		for _, x := range ss {
			out = append(out, x.ID)
		}
		return out
	}
	all, err := s.ListSessions(ctx, SessionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{a.ID, b.ID, c.ID}, ids(all)); diff != "" {
		t.Errorf("all (-want +got):\n%s", diff)
	}
	active, err := s.ListSessions(ctx, SessionFilter{ActiveOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{a.ID, c.ID}, ids(active)); diff != "" {
		t.Errorf("active (-want +got):\n%s", diff)
	}
}
