package protocol

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strings"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// Version is the protocol revision. The guest reports it in Pong so the host
// can refuse a guest it does not understand: an image built before a change
// fails at its first Ping with "rebuild the guest image", not later on a
// message it lacks. Revision 2 added Renew.
const Version = 2

// Type names a message on the wire.
type Type string

// Message is one typed protocol message.
type Message interface {
	Type() Type
}

// validator is implemented by messages that check their own fields after
// decoding; a message that fails is rejected like a malformed frame.
type validator interface {
	validate() error
}

// The message types. A request opens a stream; the messages the other side
// answers with are listed with each request.
const (
	TypePing      Type = "ping"       // -> Pong
	TypePong      Type = "pong"       //
	TypeConfigure Type = "configure"  // -> OK
	TypeExec      Type = "exec"       // -> Output*, Exit
	TypeOutput    Type = "output"     //
	TypeExit      Type = "exit"       //
	TypeSignal    Type = "signal"     // sent by the host on an exec stream to signal its process group
	TypeFileWrite Type = "file_write" // then Data*, DataEnd -> OK
	TypeFileRead  Type = "file_read"  // -> FileInfo, Data*, DataEnd
	TypeFileInfo  Type = "file_info"  //
	TypeData      Type = "data"       //
	TypeDataEnd   Type = "data_end"   //
	TypeShutdown  Type = "shutdown"   // -> OK, then the guest powers off
	TypeOK        Type = "ok"         //
	TypeError     Type = "error"      // may answer any request
)

var registry = map[Type]func() Message{
	TypePing:      func() Message { return new(Ping) },
	TypePong:      func() Message { return new(Pong) },
	TypeConfigure: func() Message { return new(Configure) },
	TypeExec:      func() Message { return new(Exec) },
	TypeOutput:    func() Message { return new(Output) },
	TypeExit:      func() Message { return new(Exit) },
	TypeSignal:    func() Message { return new(Signal) },
	TypeFileWrite: func() Message { return new(FileWrite) },
	TypeFileRead:  func() Message { return new(FileRead) },
	TypeFileInfo:  func() Message { return new(FileInfo) },
	TypeData:      func() Message { return new(Data) },
	TypeDataEnd:   func() Message { return new(DataEnd) },
	TypeShutdown:  func() Message { return new(Shutdown) },
	TypeOK:        func() Message { return new(OK) },
	TypeError:     func() Message { return new(Error) },

	// Background jobs and the persistent environment (jobs.go).
	TypeSetEnv:    func() Message { return new(SetEnv) },
	TypeEnvSet:    func() Message { return new(EnvSet) },
	TypeJobStart:  func() Message { return new(JobStart) },
	TypeJobPoll:   func() Message { return new(JobPoll) },
	TypeJobKill:   func() Message { return new(JobKill) },
	TypeJobStatus: func() Message { return new(JobStatus) },

	// File operations (fileops.go).
	TypeFileEdit:   func() Message { return new(FileEdit) },
	TypeFileEdited: func() Message { return new(FileEdited) },
	TypeFileList:   func() Message { return new(FileList) },
	TypeDirEntries: func() Message { return new(DirEntries) },
	TypeListEnd:    func() Message { return new(ListEnd) },
	TypeRenew:      func() Message { return new(Renew) },
	// The terminal (pty.go).
	TypePTYOpen:   func() Message { return new(PTYOpen) },
	TypePTYInput:  func() Message { return new(PTYInput) },
	TypePTYResize: func() Message { return new(PTYResize) },
	TypePTYOutput: func() Message { return new(PTYOutput) },
}

// Ping asks the guest whether it is ready. The first answered Ping after boot
// is the definition of "guest ready".
type Ping struct{}

// Pong answers Ping.
type Pong struct {
	Version      int    `json:"version"`
	AgentVersion string `json:"agent_version"`
	Hostname     string `json:"hostname"`
	// KernelToInitNs is the time from kernel start to PID 1 starting, read
	// from CLOCK_BOOTTIME as the first thing init does: the kernel's share of
	// boot, the floor for guest-ready.
	KernelToInitNs int64 `json:"kernel_to_init_ns"`
	// InitToReadyNs is the time from PID 1 starting to serving the channel.
	InitToReadyNs int64 `json:"init_to_ready_ns"`
	UptimeNs      int64 `json:"uptime_ns"`
}

// Configure sets the guest's identity. Empty fields are left as they are.
type Configure struct {
	Hostname string `json:"hostname,omitempty"`
	// Network, when set, configures the interface it names by MAC.
	Network *NetConfig `json:"network,omitempty"`
}

func (m *Configure) validate() error {
	if m.Hostname != "" && !validHostname(m.Hostname) {
		return errors.New("hostname: must be 1-63 of [A-Za-z0-9-], not starting or ending with '-'")
	}
	if m.Network != nil {
		return m.Network.validate()
	}
	return nil
}

// MaxNameServers is the most name servers /etc/resolv.conf uses.
const MaxNameServers = 3

// NetConfig is a guest's network identity. It is bound to the MAC the host
// gave the VM's interface: the guest configures the interface with that MAC
// (or, after a restore from a snapshot of another VM, gives its one
// Ethernet interface that MAC first).
type NetConfig struct {
	MAC string `json:"mac"`
	// Address is the guest's IPv4 address with its subnet's prefix length.
	Address netip.Prefix `json:"address"`
	Gateway netip.Addr   `json:"gateway"`
	// DNS are the name servers for /etc/resolv.conf. None means no name
	// service at all: a workspace without internet access gets none.
	DNS []netip.Addr `json:"dns"`
}

func (n *NetConfig) validate() error {
	if hw, err := net.ParseMAC(n.MAC); err != nil || len(hw) != 6 || hw[0]&1 != 0 {
		return errors.New("network.mac: must be a unicast Ethernet address")
	}
	a := n.Address
	if !a.IsValid() || !a.Addr().Is4() || a.Bits() < 8 || a.Bits() > 30 || a.Addr() == a.Masked().Addr() {
		return errors.New("network.address: must be an IPv4 host address with a prefix of /8 to /30")
	}
	if !n.Gateway.Is4() || !a.Masked().Contains(n.Gateway) || n.Gateway == a.Addr() {
		return errors.New("network.gateway: must be another IPv4 address of the same subnet")
	}
	if len(n.DNS) > MaxNameServers {
		return fmt.Errorf("network.dns: at most %d name servers", MaxNameServers)
	}
	for _, d := range n.DNS {
		if !d.Is4() || d.IsUnspecified() {
			return errors.New("network.dns: must be IPv4 addresses")
		}
	}
	return nil
}

// Exec runs a command in the guest. The guest answers with Output messages as
// output arrives (at most MaxOutputBytes per stream in total, the rest is
// drained and dropped) and one Exit message. While the command runs the host
// may send Signal messages on the same stream; the host closing the stream
// kills the command's process group.
type Exec struct {
	// Argv is run directly; agentiso's exec tool passes {"/bin/sh", "-c", cmd}.
	Argv    []string          `json:"argv"`
	Workdir string            `json:"workdir,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	// TimeoutMs kills the command's process group when it passes; 0 means no
	// timeout (the stream's life bounds it).
	TimeoutMs int64 `json:"timeout_ms,omitempty"`
	// MaxOutputBytes bounds what is sent back, per stream (stdout, stderr).
	MaxOutputBytes int64 `json:"max_output_bytes"`
	// Stdin, when set, is written to the command's standard input.
	Stdin []byte `json:"stdin,omitempty"`
}

// MaxExecOutputBytes is the hard upper bound on Exec.MaxOutputBytes.
const MaxExecOutputBytes = 16 << 20

func (m *Exec) validate() error {
	if err := checkCommand(m.Argv, m.Workdir); err != nil {
		return err
	}
	if m.TimeoutMs < 0 {
		return errors.New("timeout_ms: must not be negative")
	}
	if m.MaxOutputBytes <= 0 || m.MaxOutputBytes > MaxExecOutputBytes {
		return fmt.Errorf("max_output_bytes: must be 1..%d", MaxExecOutputBytes)
	}
	if len(m.Stdin) > ChunkSize {
		return fmt.Errorf("stdin: at most %d bytes", ChunkSize)
	}
	return CheckEnv(m.Env)
}

// Stream names an output stream of a command.
type Stream string

// The output streams.
const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// Output is a chunk of a command's output. Text is carried as a JSON string:
// bytes that are not valid UTF-8 arrive as U+FFFD.
type Output struct {
	Stream Stream `json:"stream"`
	Data   string `json:"data"`
}

func (m *Output) validate() error {
	if m.Stream != Stdout && m.Stream != Stderr {
		return errors.New("stream: must be stdout or stderr")
	}
	if len(m.Data) > 6*ChunkSize {
		return errors.New("data: chunk too large")
	}
	return nil
}

// Exit ends an exec stream.
type Exit struct {
	// ExitCode is the command's exit status, or -1 when it was killed.
	ExitCode int `json:"exit_code"`
	// Signal names the signal that ended the command, if one did.
	Signal   string `json:"signal,omitempty"`
	TimedOut bool   `json:"timed_out"`
	// Truncated is true when output past MaxOutputBytes was dropped.
	Truncated  bool  `json:"truncated"`
	DurationMs int64 `json:"duration_ms"`
}

// Signal asks the guest to send a signal to a running command's process group.
type Signal struct {
	Signal string `json:"signal"`
}

func (m *Signal) validate() error {
	return checkSignal(m.Signal)
}

// FileWrite starts a file upload. Data messages follow, then DataEnd; the
// guest answers OK once the file is complete on disk. Parents are created.
type FileWrite struct {
	Path string `json:"path"`
	// Mode is the permission bits for a new file; 0 means 0644.
	Mode   uint32 `json:"mode,omitempty"`
	Append bool   `json:"append,omitempty"`
	// Size, when not negative, is the exact number of bytes that follow.
	Size int64 `json:"size"`
}

func (m *FileWrite) validate() error {
	if err := checkGuestPath("path", m.Path); err != nil {
		return err
	}
	if m.Mode&^0o7777 != 0 {
		return errors.New("mode: only permission bits are allowed")
	}
	return nil
}

// FileRead asks for a file. The guest answers FileInfo, then Data messages,
// then DataEnd. Limit 0 means to the end of the file.
type FileRead struct {
	Path   string `json:"path"`
	Offset int64  `json:"offset,omitempty"`
	Limit  int64  `json:"limit,omitempty"`
}

func (m *FileRead) validate() error {
	if err := checkGuestPath("path", m.Path); err != nil {
		return err
	}
	if m.Offset < 0 || m.Limit < 0 {
		return errors.New("offset, limit: must not be negative")
	}
	return nil
}

// FileInfo describes a file about to be sent.
type FileInfo struct {
	Size    int64  `json:"size"`
	Mode    uint32 `json:"mode"`
	MtimeNs int64  `json:"mtime_ns"`
}

// Data is a chunk of file content (base64 on the wire).
type Data struct {
	Bytes []byte `json:"bytes"`
}

func (m *Data) validate() error {
	if len(m.Bytes) > ChunkSize {
		return fmt.Errorf("bytes: chunk of %d bytes exceeds %d", len(m.Bytes), ChunkSize)
	}
	return nil
}

// DataEnd ends a sequence of Data messages.
type DataEnd struct{}

// Shutdown asks the guest to sync its disks and power off.
type Shutdown struct{}

// OK acknowledges a request that has no other answer.
type OK struct{}

// Error answers a request that failed. Class is an errdefs class name, so the
// host can classify the failure without parsing text.
type Error struct {
	Class   string `json:"class"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Classified returns e as an errdefs error of its class.
func (e *Error) Classified() error {
	return &errdefs.Error{Class: errdefs.ParseClass(e.Class), Msg: e.Message}
}

// ErrorFrom builds the Error message that reports err to the peer.
func ErrorFrom(err error) *Error {
	c := errdefs.ClassOf(err)
	msg := err.Error()
	var e *errdefs.Error
	if errors.As(err, &e) {
		msg = e.Msg
	}
	return &Error{Class: c.String(), Message: msg}
}

func (*Ping) Type() Type      { return TypePing }
func (*Pong) Type() Type      { return TypePong }
func (*Configure) Type() Type { return TypeConfigure }
func (*Exec) Type() Type      { return TypeExec }
func (*Output) Type() Type    { return TypeOutput }
func (*Exit) Type() Type      { return TypeExit }
func (*Signal) Type() Type    { return TypeSignal }
func (*FileWrite) Type() Type { return TypeFileWrite }
func (*FileRead) Type() Type  { return TypeFileRead }
func (*FileInfo) Type() Type  { return TypeFileInfo }
func (*Data) Type() Type      { return TypeData }
func (*DataEnd) Type() Type   { return TypeDataEnd }
func (*Shutdown) Type() Type  { return TypeShutdown }
func (*OK) Type() Type        { return TypeOK }
func (*Error) Type() Type     { return TypeError }

// checkCommand accepts a command line to run: a non-empty argv without NUL
// bytes and, if given, an absolute working directory.
func checkCommand(argv []string, workdir string) error {
	if len(argv) == 0 || argv[0] == "" {
		return errors.New("argv: must not be empty")
	}
	for i, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("argv[%d]: must not contain NUL", i)
		}
	}
	if workdir != "" {
		return checkGuestPath("workdir", workdir)
	}
	return nil
}

// checkGuestPath accepts an absolute guest path without NUL bytes; field
// names it in the error.
func checkGuestPath(field, p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%s: must not be empty", field)
	case !path.IsAbs(p):
		return fmt.Errorf("%s: must be absolute", field)
	case len(p) > 4096:
		return fmt.Errorf("%s: longer than 4096 bytes", field)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("%s: must not contain NUL", field)
	}
	return nil
}

func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 63 || h[0] == '-' || h[len(h)-1] == '-' {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
