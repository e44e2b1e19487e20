package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeRejectsJobsEnvAndFileOps(t *testing.T) {
	tests := []struct {
		name, payload, want string
	}{
		{"set_env with nothing", `{"type":"set_env","body":{}}`, "vars: at least one"},
		{"set_env blocked name", `{"type":"set_env","body":{"vars":{"LD_PRELOAD":"/x.so"}}}`, "LD_PRELOAD is blocked"},
		{"set_env blocked prefix", `{"type":"set_env","body":{"vars":{"BASH_FUNC_x%%":"() { :; }"}}}`, "not a valid variable name"},
		{"set_env bad unset", `{"type":"set_env","body":{"unset":["A B"]}}`, "unset"},
		{"job without argv", `{"type":"job_start","body":{"max_output_bytes":1}}`, "argv: must not be empty"},
		{"job relative workdir", `{"type":"job_start","body":{"argv":["x"],"workdir":"src","max_output_bytes":1}}`, "workdir: must be absolute"},
		{"job blocked env", `{"type":"job_start","body":{"argv":["x"],"max_output_bytes":1,"env":{"LD_LIBRARY_PATH":"/tmp"}}}`, "LD_LIBRARY_PATH is blocked"},
		{"job unbounded output", `{"type":"job_start","body":{"argv":["x"]}}`, "max_output_bytes"},
		{"job output too big", `{"type":"job_start","body":{"argv":["x"],"max_output_bytes":1048577}}`, "max_output_bytes"},
		{"poll job 0", `{"type":"job_poll","body":{"job_id":0}}`, "job_id"},
		{"poll negative job", `{"type":"job_poll","body":{"job_id":-1}}`, "decoding job_poll"},
		{"kill bad signal", `{"type":"job_kill","body":{"job_id":1,"signal":"SIGSTOP"}}`, "signal: must be one of"},
		{"kill number on the wire", `{"type":"job_kill","body":{"job_id":1,"signal":"9"}}`, "signal: must be one of"},
		{"edit empty old", `{"type":"file_edit","body":{"path":"/a","old":"","new":"eA=="}}`, "old_string: must not be empty"},
		{"edit relative path", `{"type":"file_edit","body":{"path":"a","old":"eA=="}}`, "path: must be absolute"},
		{"edit old too long", `{"type":"file_edit","body":{"path":"/a","old":"` + strings.Repeat("A", 4*(MaxEditStringBytes/3+1)) + `"}}`, "old_string: longer"},
		{"list no bound", `{"type":"file_list","body":{"path":"/a"}}`, "max_entries"},
		{"list too many", `{"type":"file_list","body":{"path":"/a","max_entries":10001}}`, "max_entries"},
		{"entry of unknown type", `{"type":"dir_entries","body":{"entries":[{"name":"x","type":"door"}]}}`, "entries[0].type"},
		{"entry without name", `{"type":"dir_entries","body":{"entries":[{"name":"","type":"file"}]}}`, "entries[0].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.payload))
			if err == nil {
				t.Fatalf("Decode accepted %#v", m)
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want ErrMalformed mentioning %q", err, tt.want)
			}
		})
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]string{
		"SIGTERM": "SIGTERM", "TERM": "SIGTERM", "term": "SIGTERM", "sigkill": "SIGKILL",
		"9": "SIGKILL", "15": "SIGTERM", " 2 ": "SIGINT", "HUP": "SIGHUP", "12": "SIGUSR2",
	} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "SIGSTOP", "19", "0", "-9", "KILLALL", "SIG"} {
		if got, err := ParseSignal(in); err == nil || !strings.HasPrefix(err.Error(), "signal: ") {
			t.Errorf("ParseSignal(%q) = %q, %v; want an error naming the field", in, got, err)
		}
	}
}

// A frame of the largest edit the protocol allows still fits: both strings
// at their limit, in bytes that JSON would escape sixfold.
func TestLargestEditFitsAFrame(t *testing.T) {
	big := []byte(strings.Repeat("<\x01", MaxEditStringBytes/2))
	if _, err := Encode(&FileEdit{Path: "/" + strings.Repeat("p", 4095), Old: big, New: big}); err != nil {
		t.Fatal(err)
	}
}

// A batch at either bound (MaxListBatchBytes of the worst names, or
// MaxListBatchEntries entries with every field at its widest) still fits.
func TestLargestListBatchFitsAFrame(t *testing.T) {
	widest := DirEntry{Type: EntrySymlink, Size: -1 << 63, Mode: 1<<32 - 1, MtimeNs: -1 << 63}
	var byBytes, byCount DirEntries
	name := strings.Repeat("\x01", 255)
	for n := 0; n+2*len(name) <= MaxListBatchBytes; n += 2 * len(name) {
		e := widest
		e.Name, e.Target = name, name
		byBytes.Entries = append(byBytes.Entries, e)
	}
	for range MaxListBatchEntries {
		e := widest
		e.Name, e.Target = "\x01", "\x01"
		byCount.Entries = append(byCount.Entries, e)
	}
	for _, m := range []*DirEntries{&byBytes, &byCount} {
		if _, err := Encode(m); err != nil {
			t.Fatal(err)
		}
	}
}
