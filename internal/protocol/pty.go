package protocol

import (
	"errors"
	"fmt"
	"strings"
)

// The terminal message types. A PTYOpen request opens a stream on which the
// host then sends PTYInput and PTYResize while the guest sends PTYOutput,
// until the program ends and the guest sends Exit. The host closing the
// stream hangs the terminal up: its process group is killed.
const (
	TypePTYOpen   Type = "pty_open"   // -> PTYOutput*, Exit (host sends PTYInput*, PTYResize*)
	TypePTYInput  Type = "pty_input"  //
	TypePTYResize Type = "pty_resize" //
	TypePTYOutput Type = "pty_output" //
)

// MaxPTYDim bounds a terminal's rows and columns.
const MaxPTYDim = 1000

// PTYOpen starts a program on a new pseudo-terminal in the guest: an
// interactive shell for a person at the dashboard.
type PTYOpen struct {
	// Argv is the program; empty means the guest's login shell.
	Argv    []string          `json:"argv,omitempty"`
	Workdir string            `json:"workdir,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Rows    int               `json:"rows"`
	Cols    int               `json:"cols"`
}

func (m *PTYOpen) validate() error {
	for i, a := range m.Argv {
		if i == 0 && a == "" {
			return errors.New("argv: must not start with an empty string")
		}
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("argv[%d]: must not contain NUL", i)
		}
	}
	if m.Workdir != "" {
		if err := checkGuestPath("workdir", m.Workdir); err != nil {
			return err
		}
	}
	if err := checkDims(m.Rows, m.Cols); err != nil {
		return err
	}
	return CheckEnv(m.Env)
}

// PTYInput is what the person typed: bytes for the terminal's input.
type PTYInput struct {
	Data []byte `json:"data"`
}

func (m *PTYInput) validate() error {
	if len(m.Data) > ChunkSize {
		return fmt.Errorf("data: chunk of %d bytes exceeds %d", len(m.Data), ChunkSize)
	}
	return nil
}

// PTYResize changes the terminal's size.
type PTYResize struct {
	Rows int `json:"rows"`
	Cols int `json:"cols"`
}

func (m *PTYResize) validate() error { return checkDims(m.Rows, m.Cols) }

// PTYOutput is bytes the program wrote to its terminal, escape sequences
// included: the host passes them to a terminal emulator unchanged.
type PTYOutput struct {
	Data []byte `json:"data"`
}

func (m *PTYOutput) validate() error {
	if len(m.Data) > ChunkSize {
		return fmt.Errorf("data: chunk of %d bytes exceeds %d", len(m.Data), ChunkSize)
	}
	return nil
}

func checkDims(rows, cols int) error {
	if rows < 1 || rows > MaxPTYDim || cols < 1 || cols > MaxPTYDim {
		return fmt.Errorf("rows, cols: must be 1..%d", MaxPTYDim)
	}
	return nil
}

func (*PTYOpen) Type() Type   { return TypePTYOpen }
func (*PTYInput) Type() Type  { return TypePTYInput }
func (*PTYResize) Type() Type { return TypePTYResize }
func (*PTYOutput) Type() Type { return TypePTYOutput }
