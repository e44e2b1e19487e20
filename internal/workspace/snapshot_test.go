package workspace

import (
	"testing"

	"github.com/agentiso/agentiso/internal/storage"
)

func TestM19_ReserveCrossed(t *testing.T) {
	const gb = int64(1) << 30
	for _, tc := range []struct {
		name       string
		sp         storage.Space
		need       int64
		minFree    int64
		minPercent int
		crossed    bool
	}{
		{"plenty", storage.Space{Free: 50 * gb, Total: 100 * gb}, 1 * gb, 2 * gb, 5, false},
		{"bytes reserve", storage.Space{Free: 3 * gb, Total: 100 * gb}, 2 * gb, 2 * gb, 0, true},
		{"percent reserve is larger", storage.Space{Free: 6 * gb, Total: 100 * gb}, 2 * gb, 1 * gb, 5, true},
		{"just enough", storage.Space{Free: 7 * gb, Total: 100 * gb}, 2 * gb, 1 * gb, 5, false},
		{"no reserve, need exceeds free", storage.Space{Free: 1 * gb, Total: 100 * gb}, 2 * gb, 0, 0, true},
		{"full disk, nothing needed", storage.Space{Free: 0, Total: 100 * gb}, 0, 1, 0, true},
	} {
		if _, got := reserveCrossed(tc.sp, tc.need, tc.minFree, tc.minPercent); got != tc.crossed {
			t.Errorf("%s: crossed = %v, want %v", tc.name, got, tc.crossed)
		}
	}
}

func TestForkNames(t *testing.T) {
	for _, tc := range []struct {
		req     ForkRequest
		want    []string
		wantErr string
	}{
		{ForkRequest{NewName: "f1"}, []string{"f1"}, ""},
		{ForkRequest{Count: 3, NamePrefix: "wk"}, []string{"wk-1", "wk-2", "wk-3"}, ""},
		{ForkRequest{Count: 2}, []string{"worker-1", "worker-2"}, ""},
		{ForkRequest{Count: 1, NamePrefix: "solo"}, []string{"solo-1"}, ""},
		{ForkRequest{Count: 21}, nil, "count"},
		{ForkRequest{Count: -1}, nil, "count"},
		{ForkRequest{Count: 2, NewName: "x"}, nil, "new_name"},
		{ForkRequest{NewName: "bad name"}, nil, "new_name"},
		{ForkRequest{Count: 2, NamePrefix: "-x"}, nil, "name_prefix"},
	} {
		got, err := forkNames(tc.req)
		if tc.wantErr != "" {
			if err == nil || len(err.Error()) < len(tc.wantErr) || err.Error()[:len(tc.wantErr)] != tc.wantErr {
				t.Errorf("forkNames(%+v) = %v, %v; want an error naming %s", tc.req, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("forkNames(%+v) = %v, %v; want %v", tc.req, got, err, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("forkNames(%+v) = %v, want %v", tc.req, got, tc.want)
			}
		}
	}
	if got, err := forkNames(ForkRequest{}); err != nil || len(got) != 1 || len(got[0]) < 6 {
		t.Errorf("a default single fork name: %v, %v", got, err)
	}
}
