// Package protocol is the language the host and the guest agent speak over the
// guest channel. Both sides import it; it imports nothing of agentiso but
// errdefs.
//
// The channel carries a stream multiplexer (yamux); every request opens its own
// stream. On a stream, each message travels as one frame: a 4-byte big-endian
// length followed by that many bytes of JSON, {"type": ..., "body": {...}}.
// One hard limit, MaxFrameSize, is checked before anything is allocated when
// reading and before anything is written when encoding. Bulk data (file
// contents, exec output) never travels in one message: it is cut into chunks
// of at most ChunkSize bytes.
package protocol

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxFrameSize is the largest frame payload either side will read or write.
const MaxFrameSize = 1 << 20

// ChunkSize is the largest number of raw data bytes in one Data or Output
// message. Base64 (Data) grows it by 4/3 and JSON escaping of output can grow
// it up to 6x, both well inside MaxFrameSize.
const ChunkSize = 128 << 10

// ErrFrameTooLarge is returned when a frame's declared or encoded length
// exceeds MaxFrameSize.
var ErrFrameTooLarge = errors.New("frame exceeds the maximum frame size")

// ErrUnknownType is returned for a frame whose type is not in the registry.
var ErrUnknownType = errors.New("unknown message type")

// envelope is the JSON shape of one frame.
type envelope struct {
	Type Type            `json:"type"`
	Body json.RawMessage `json:"body,omitempty"`
}

// Encode serialises m as one frame. It refuses a message whose encoding would
// exceed MaxFrameSize, so the peer never has to.
func Encode(m Message) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", m.Type(), err)
	}
	payload, err := json.Marshal(envelope{Type: m.Type(), Body: body})
	if err != nil {
		return nil, fmt.Errorf("encoding %s envelope: %w", m.Type(), err)
	}
	if len(payload) > MaxFrameSize {
		return nil, fmt.Errorf("%s message of %d bytes: %w", m.Type(), len(payload), ErrFrameTooLarge)
	}
	buf := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(buf, uint32(len(payload)))
	copy(buf[4:], payload)
	return buf, nil
}

// Write encodes m and writes it to w as one frame.
func Write(w io.Writer, m Message) error {
	buf, err := Encode(m)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

// Read reads one frame from r and returns the typed message it holds. The
// declared length is checked against MaxFrameSize before the payload buffer is
// allocated. io.EOF is returned unwrapped when r ends cleanly between frames.
func Read(r io.Reader) (Message, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("reading frame header: %w", err)
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrameSize {
		return nil, fmt.Errorf("frame of %d bytes: %w", n, ErrFrameTooLarge)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, fmt.Errorf("reading frame payload: %w", err)
	}
	return Decode(payload)
}

// Decode parses one frame payload (without its length prefix).
func Decode(payload []byte) (Message, error) {
	if len(payload) > MaxFrameSize {
		return nil, ErrFrameTooLarge
	}
	var env envelope
	if err := json.Unmarshal(payload, &env); err != nil {
		return nil, fmt.Errorf("decoding frame: %w", err)
	}
	newMsg, ok := registry[env.Type]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, env.Type)
	}
	m := newMsg()
	if len(env.Body) > 0 && string(env.Body) != "null" {
		if err := json.Unmarshal(env.Body, m); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", env.Type, err)
		}
	}
	if v, ok := m.(validator); ok {
		if err := v.validate(); err != nil {
			return nil, fmt.Errorf("invalid %s: %w", env.Type, err)
		}
	}
	return m, nil
}

// ReadAs reads one frame and requires it to be a *T. A peer's Error message is
// returned as an error (of type *Error), so callers can treat a refusal and a
// broken stream alike.
func ReadAs[T any, PT interface {
	*T
	Message
}](r io.Reader) (PT, error) {
	m, err := Read(r)
	if err != nil {
		return nil, err
	}
	if e, ok := m.(*Error); ok {
		return nil, e
	}
	v, ok := m.(PT)
	if !ok {
		var want PT
		return nil, fmt.Errorf("unexpected %s message, want %s", m.Type(), want.Type())
	}
	return v, nil
}

// PortName is the name of the virtio-serial port that carries the channel;
// the guest finds its device through /sys/class/virtio-ports/*/name.
const PortName = "org.agentiso.channel.0"
