package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agentiso/agentiso/internal/errdefs"
)

var (
	goodMAC    = "02:a9:0a:63:00:02"
	goodPrefix = netip.MustParsePrefix("10.99.0.2/16")
	goodGW     = netip.MustParseAddr("10.99.0.1")
	// netipComparers let go-cmp compare netip values, which have no
	// exported fields.
	netipComparers = []cmp.Option{
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	}
)

// sampleMessages holds one filled-in value of every message type.
func sampleMessages() []Message {
	return []Message{
		&Ping{},
		&Pong{Version: Version, AgentVersion: "v1.2.3", Hostname: "ws-1", KernelToInitNs: 1, InitToReadyNs: 2, UptimeNs: 3},
		&Configure{Hostname: "ws-1", Network: &NetConfig{MAC: "02:a9:0a:63:00:02",
			Address: netip.MustParsePrefix("10.99.0.2/16"), Gateway: netip.MustParseAddr("10.99.0.1"),
			DNS: []netip.Addr{netip.MustParseAddr("1.1.1.1")}}},
		&Exec{Argv: []string{"/bin/sh", "-c", "echo hi"}, Workdir: "/tmp", Env: map[string]string{"A": "b"}, TimeoutMs: 5, MaxOutputBytes: 1024, Stdin: []byte("in\x00\xff")},
		&Output{Stream: Stderr, Data: "héllo\n\x01"},
		&Exit{ExitCode: -1, Signal: "SIGKILL", TimedOut: true, Truncated: true, DurationMs: 9},
		&Signal{Signal: "SIGTERM"},
		&FileWrite{Path: "/a/b", Mode: 0o755, Append: true, Size: -1},
		&FileRead{Path: "/a/b", Offset: 3, Limit: 4},
		&FileInfo{Size: 10, Mode: 0o644, MtimeNs: 12345},
		&Data{Bytes: []byte{0, 1, 2, 0xff}},
		&DataEnd{},
		&Shutdown{},
		&OK{},
		&Error{Class: "not_found", Message: "/x: no such file"},
		&SetEnv{Vars: map[string]string{"API_KEY": "s3cret"}, Unset: []string{"OLD"}},
		&EnvSet{Names: []string{"API_KEY", "B"}},
		&JobStart{Argv: []string{"/bin/sh", "-c", "make"}, Workdir: "/src", Env: map[string]string{"A": "b"}, MaxOutputBytes: 4096},
		&JobPoll{JobID: 7},
		&JobKill{JobID: 7, Signal: "SIGKILL"},
		&JobStatus{JobID: 7, Pid: 123, ExitCode: -1, Signal: "SIGKILL", DurationMs: 5, StdoutBytes: 10, StderrBytes: 2, Truncated: true, SignalSent: true},
		&FileEdit{Path: "/a/b", Old: []byte("x"), New: []byte("y\x00")},
		&FileEdited{Line: 3, Size: 99},
		&FileList{Path: "/a", MaxEntries: 100},
		&DirEntries{Entries: []DirEntry{{Name: "f", Type: EntryFile, Size: 3, Mode: 0o644, MtimeNs: 9}, {Name: "l", Type: EntrySymlink, Target: "/x"}}},
		&ListEnd{Total: 5, Truncated: true},
		&Renew{Entropy: bytes.Repeat([]byte{7}, 64), RealtimeNs: 1764387862000000000, MachineID: "0123456789abcdef0123456789abcdef"},
		&PTYOpen{Argv: []string{"/bin/bash", "-l"}, Workdir: "/root", Env: map[string]string{"A": "b"}, Rows: 24, Cols: 80},
		&PTYInput{Data: []byte("ls\r\x03")},
		&PTYResize{Rows: 50, Cols: 200},
		&PTYOutput{Data: []byte("\x1b[31mred\x1b[0m\xff")},
	}
}

func TestRoundTripEveryType(t *testing.T) {
	seen := map[Type]bool{}
	for _, m := range sampleMessages() {
		t.Run(string(m.Type()), func(t *testing.T) {
			seen[m.Type()] = true
			var buf bytes.Buffer
			if err := Write(&buf, m); err != nil {
				t.Fatalf("Write: %v", err)
			}
			got, err := Read(&buf)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if diff := cmp.Diff(m, got, netipComparers...); diff != "" {
				t.Errorf("round trip changed the message (-sent +read):\n%s", diff)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes left after one frame", buf.Len())
			}
		})
	}
	for typ := range registry {
		if !seen[typ] {
			t.Errorf("message type %q has no round-trip sample", typ)
		}
	}
}

func TestDecodeAcceptsAnySpellingOfTheEnvelope(t *testing.T) {
	want := &Exec{Argv: []string{"ls"}, MaxOutputBytes: 7}
	for _, payload := range []string{
		`{"type":"exec","body":{"argv":["ls"],"max_output_bytes":7}}`,
		`{"body":{"argv":["ls"],"max_output_bytes":7},"type":"exec"}`,
		` { "type" : "exec" , "body" : { "argv" : [ "ls" ] , "max_output_bytes" : 7 } } `,
		`{"type":"\u0065xec","body":{"argv":["ls"],"max_output_bytes":7}}`,
		`{"type":"exec","body":{"argv":["ls"],"max_output_bytes":7},"extra":1}`,
	} {
		got, err := Decode([]byte(payload))
		if err != nil {
			t.Errorf("Decode(%s): %v", payload, err)
			continue
		}
		if diff := cmp.Diff(Message(want), got); diff != "" {
			t.Errorf("Decode(%s) (-want +got):\n%s", payload, diff)
		}
	}
	// A duplicate type key: the last one counts, however the frame starts.
	if _, err := Decode([]byte(`{"type":"ping","body":{},"type":"exec"}`)); err == nil || !strings.Contains(err.Error(), "invalid exec") {
		t.Errorf("duplicate type: %v, want the exec (last) read and refused", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    error  // matched with errors.Is when set
		wantMsg string // substring of the error otherwise
	}{
		{"unknown type", `{"type":"launch_missiles","body":{}}`, ErrUnknownType, ""},
		{"missing type", `{"body":{}}`, ErrUnknownType, ""},
		{"not json", `{"type":`, nil, "decoding frame"},
		{"body of wrong shape", `{"type":"exec","body":[1,2]}`, nil, "decoding exec"},
		{"empty argv", `{"type":"exec","body":{"argv":[],"max_output_bytes":1}}`, nil, "argv: must not be empty"},
		{"NUL in argv", `{"type":"exec","body":{"argv":["/bin/echo","a\u0000b"],"max_output_bytes":1}}`, nil, "argv[1]: must not contain NUL"},
		{"relative workdir", `{"type":"exec","body":{"argv":["x"],"workdir":"tmp","max_output_bytes":1}}`, nil, "workdir: must be absolute"},
		{"negative timeout", `{"type":"exec","body":{"argv":["x"],"timeout_ms":-1,"max_output_bytes":1}}`, nil, "timeout_ms"},
		{"no output bound", `{"type":"exec","body":{"argv":["x"]}}`, nil, "max_output_bytes"},
		{"output bound too big", `{"type":"exec","body":{"argv":["x"],"max_output_bytes":16777217}}`, nil, "max_output_bytes"},
		{"blocked env", `{"type":"exec","body":{"argv":["x"],"max_output_bytes":1,"env":{"LD_PRELOAD":"/x.so"}}}`, nil, "LD_PRELOAD is blocked"},
		{"bad env name", `{"type":"exec","body":{"argv":["x"],"max_output_bytes":1,"env":{"A=B":"c"}}}`, nil, "not a valid variable name"},
		{"stdin too big", `{"type":"exec","body":{"argv":["x"],"max_output_bytes":1,"stdin":"` + strings.Repeat("A", 4*(ChunkSize/3+1)) + `"}}`, nil, "stdin"},
		{"bad output stream", `{"type":"output","body":{"stream":"stdin","data":""}}`, nil, "stream"},
		{"bad signal", `{"type":"signal","body":{"signal":"SIGSTOP"}}`, nil, "signal"},
		{"relative write path", `{"type":"file_write","body":{"path":"a/b","size":-1}}`, nil, "path: must be absolute"},
		{"NUL in path", `{"type":"file_read","body":{"path":"/a\u0000"}}`, nil, "path: must not contain NUL"},
		{"mode beyond permissions", `{"type":"file_write","body":{"path":"/a","mode":65536,"size":-1}}`, nil, "mode"},
		{"negative offset", `{"type":"file_read","body":{"path":"/a","offset":-1}}`, nil, "offset"},
		{"bad hostname", `{"type":"configure","body":{"hostname":"-bad"}}`, nil, "hostname"},
		{"data chunk too big", `{"type":"data","body":{"bytes":"` + strings.Repeat("A", 4*(ChunkSize/3+1)) + `"}}`, nil, "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.payload))
			if err == nil {
				t.Fatalf("Decode accepted %s as %#v", tt.name, m)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v is not ErrMalformed", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestEncodeRefusesInvalidFields(t *testing.T) {
	tests := []struct {
		m     Message
		field string
	}{
		{&Exec{MaxOutputBytes: 1}, "argv"},
		{&Exec{Argv: []string{"x"}}, "max_output_bytes"},
		{&Exec{Argv: []string{"x"}, MaxOutputBytes: 1, Env: map[string]string{"LD_PRELOAD": "/evil.so"}}, "LD_PRELOAD"},
		{&Exec{Argv: []string{"x"}, MaxOutputBytes: 1, Env: map[string]string{"BASH_FUNC_x%%": "() { :; }"}}, "BASH_FUNC_x%%"},
		{&Exec{Argv: []string{"x"}, MaxOutputBytes: 1, Workdir: "rel"}, "workdir"},
		{&Exec{Argv: []string{"x"}, MaxOutputBytes: 1, Stdin: make([]byte, ChunkSize+1)}, "stdin"},
		{&Signal{Signal: "SIGSTOP"}, "signal"},
		{&FileWrite{Path: "/a", Mode: 0o10000}, "mode"},
		{&FileRead{Path: ""}, "path"},
		{&Configure{Hostname: "a_b"}, "hostname"},
		{&Configure{Network: &NetConfig{MAC: "01:00:00:00:00:01", Address: goodPrefix, Gateway: goodGW}}, "network.mac"},
		{&Configure{Network: &NetConfig{MAC: goodMAC, Address: netip.MustParsePrefix("10.99.0.0/16"), Gateway: goodGW}}, "network.address"},
		{&Configure{Network: &NetConfig{MAC: goodMAC, Address: netip.MustParsePrefix("fd00::2/64"), Gateway: goodGW}}, "network.address"},
		{&Configure{Network: &NetConfig{MAC: goodMAC, Address: goodPrefix, Gateway: netip.MustParseAddr("10.98.0.1")}}, "network.gateway"},
		{&Configure{Network: &NetConfig{MAC: goodMAC, Address: goodPrefix, Gateway: goodGW,
			DNS: []netip.Addr{goodGW, goodGW, goodGW, goodGW}}}, "network.dns"},
		{&Output{Stream: "stdin"}, "stream"},
		{&Data{Bytes: make([]byte, ChunkSize+1)}, "bytes"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		err := Write(&buf, tt.m)
		if !errdefs.Is(err, errdefs.Invalid) {
			t.Errorf("Write(%#v) = %v, want an Invalid error", tt.m, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.field) {
			t.Errorf("Write(%s): %q does not name %s", tt.m.Type(), err, tt.field)
		}
		if buf.Len() != 0 {
			t.Errorf("Write(%s) wrote an invalid message", tt.m.Type())
		}
	}
}

// L-10: the sender checks the frame limit too, so a peer never has to.
func TestL10_EncodeRefusesOversizedFrame(t *testing.T) {
	for _, m := range []Message{
		&Pong{Hostname: strings.Repeat("x", MaxFrameSize)},
		// Each NUL is escaped as \u0000: 6 bytes on the wire per byte.
		&Error{Message: strings.Repeat("\x00", MaxFrameSize/6+1)},
		&Exec{Argv: []string{strings.Repeat("a", MaxFrameSize)}, MaxOutputBytes: 1},
	} {
		var buf bytes.Buffer
		err := Write(&buf, m)
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Errorf("Write(%s) = %v, want ErrFrameTooLarge", m.Type(), err)
		}
		if buf.Len() != 0 {
			t.Errorf("Write(%s) wrote %d bytes of a refused frame", m.Type(), buf.Len())
		}
	}
	// A full chunk of the worst-case output still fits.
	if _, err := Encode(&Output{Stream: Stdout, Data: strings.Repeat("\x00", ChunkSize)}); err != nil {
		t.Errorf("a chunk of %d control bytes does not encode: %v", ChunkSize, err)
	}
	if _, err := Encode(&Data{Bytes: make([]byte, ChunkSize)}); err != nil {
		t.Errorf("a data chunk of %d bytes does not encode: %v", ChunkSize, err)
	}
}

// headerOnly is a reader that yields one frame header and then fails the
// test if anybody asks for the body.
type headerOnly struct {
	t   *testing.T
	hdr []byte
}

func (h *headerOnly) Read(p []byte) (int, error) {
	if len(h.hdr) == 0 {
		h.t.Error("Read asked for the body of a frame it should have refused")
		return 0, io.EOF
	}
	n := copy(p, h.hdr)
	h.hdr = h.hdr[n:]
	return n, nil
}

func header(n uint32) []byte {
	return binary.BigEndian.AppendUint32(nil, n)
}

// M-12: a frame's declared length is checked before anything is allocated.
func TestM12_ReadRefusesOversizedFrameBeforeAllocating(t *testing.T) {
	for _, n := range []uint32{MaxFrameSize + 1, 2 << 30, 1<<32 - 1} {
		before := totalAlloc()
		_, err := Read(&headerOnly{t: t, hdr: header(n)})
		allocated := totalAlloc() - before
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Errorf("frame claiming %d bytes: %v, want ErrFrameTooLarge", n, err)
		}
		if allocated > 64<<10 {
			t.Errorf("frame claiming %d bytes: allocated %d bytes before refusing it", n, allocated)
		}
	}
}

// M-12: a frame at the limit whose body never comes costs the eager
// buffer, not the full size, so many streams announcing big frames cannot
// make a peer allocate for them.
func TestM12_ReadAllocatesAsDataArrives(t *testing.T) {
	r := io.MultiReader(bytes.NewReader(header(MaxFrameSize)), strings.NewReader("{"))
	before := totalAlloc()
	_, err := Read(r)
	allocated := totalAlloc() - before
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated frame: %v, want ErrUnexpectedEOF", err)
	}
	if allocated > 2*eagerPayload {
		t.Errorf("truncated frame of %d bytes allocated %d bytes", MaxFrameSize, allocated)
	}

	// A large frame that does arrive, in small pieces, is read whole.
	big := &Output{Stream: Stdout, Data: strings.Repeat("z", 3*eagerPayload+7)}
	frame, err := Encode(big)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Read(&trickle{b: frame, n: 1000})
	if err != nil {
		t.Fatalf("reading a trickled frame: %v", err)
	}
	if diff := cmp.Diff(Message(big), got); diff != "" {
		t.Errorf("trickled frame changed (-sent +read):\n%s", diff)
	}
}

// trickle returns at most n bytes per Read.
type trickle struct {
	b []byte
	n int
}

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[k:]
	return k, nil
}

func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

func TestReadEnds(t *testing.T) {
	if _, err := Read(bytes.NewReader(nil)); err != io.EOF {
		t.Errorf("empty input: %v, want io.EOF unwrapped", err)
	}
	if _, err := Read(bytes.NewReader([]byte{0, 0})); !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrMalformed) {
		t.Errorf("half a header: %v, want ErrUnexpectedEOF and not ErrMalformed (the stream broke)", err)
	}
	frame, _ := Encode(&Ping{})
	if _, err := Read(bytes.NewReader(frame[:len(frame)-1])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short payload: %v, want ErrUnexpectedEOF", err)
	}
	if _, err := Read(bytes.NewReader(header(0))); !errors.Is(err, ErrMalformed) {
		t.Errorf("an empty payload: %v, want ErrMalformed", err)
	}
}

func TestReadAs(t *testing.T) {
	var buf bytes.Buffer
	Write(&buf, &Pong{Hostname: "h"})
	pong, err := ReadAs[Pong](&buf)
	if err != nil || pong.Hostname != "h" {
		t.Fatalf("ReadAs[Pong] = %v, %v", pong, err)
	}

	Write(&buf, ErrorFrom(errdefs.NotFoundf("/x: no such file or directory")))
	_, err = ReadAs[Pong](&buf)
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("peer error came back as %T %v, want *Error", err, err)
	}
	if c := perr.Classified(); !errdefs.Is(c, errdefs.NotFound) || errdefs.Public(c) != "/x: no such file or directory" {
		t.Errorf("classified peer error = %v (class %v)", c, errdefs.ClassOf(c))
	}

	Write(&buf, &OK{})
	if _, err := ReadAs[Pong](&buf); err == nil || !strings.Contains(err.Error(), "unexpected ok message") {
		t.Errorf("ReadAs[Pong] of an ok: %v", err)
	}
}

func TestErrorFromKeepsClassAndHidesNothingPublic(t *testing.T) {
	tests := []struct {
		err       error
		wantClass string
		wantMsg   string
	}{
		{errdefs.Invalidf("path: bad"), "invalid", "path: bad"},
		{errdefs.With(errdefs.PermissionDenied, "/etc/shadow: permission denied", errors.New("EACCES")), "permission_denied", "/etc/shadow: permission denied"},
		{errors.New("something internal"), "internal", "something internal"},
	}
	for _, tt := range tests {
		e := ErrorFrom(tt.err)
		if e.Class != tt.wantClass || e.Message != tt.wantMsg {
			t.Errorf("ErrorFrom(%v) = %+v, want class %s message %q", tt.err, e, tt.wantClass, tt.wantMsg)
		}
	}
}
