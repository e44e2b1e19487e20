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
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/agentiso/agentiso/internal/errdefs"
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

// Encode serialises m as one frame. It refuses a message that the peer
// would refuse: one with invalid fields (an errdefs.Invalid error naming the
// field) or one whose encoding would exceed MaxFrameSize.
func Encode(m Message) ([]byte, error) {
	if v, ok := m.(validator); ok {
		if err := v.validate(); err != nil {
			return nil, errdefs.Invalidf("invalid %s: %v", m.Type(), err)
		}
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", m.Type(), err)
	}
	typ, err := json.Marshal(m.Type())
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", m.Type(), err)
	}
	// The envelope is put together by hand: marshalling it would scan and
	// copy the body, up to a megabyte, once more.
	n := len(`{"type":,"body":}`) + len(typ) + len(body)
	if n > MaxFrameSize {
		return nil, fmt.Errorf("%s message of %d bytes: %w", m.Type(), n, ErrFrameTooLarge)
	}
	buf := make([]byte, 4, 4+n)
	binary.BigEndian.PutUint32(buf, uint32(n))
	buf = append(buf, `{"type":`...)
	buf = append(buf, typ...)
	buf = append(buf, `,"body":`...)
	buf = append(buf, body...)
	buf = append(buf, '}')
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
	payload, err := readPayload(r, int(n))
	if err != nil {
		return nil, fmt.Errorf("reading frame payload: %w", err)
	}
	return Decode(payload)
}

// eagerPayload is how much of a payload Read allocates before its bytes
// arrive. A larger frame's buffer grows with the data actually received, so a
// peer that announces big frames and sends nothing costs little memory.
const eagerPayload = 64 << 10

// readPayload reads exactly n bytes, allocating as they arrive.
func readPayload(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, eagerPayload))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n, 2*cap(buf))-len(buf))
		}
		m, err := r.Read(buf[len(buf):min(n, cap(buf))])
		buf = buf[:len(buf)+m]
		if err != nil {
			if len(buf) == n {
				break
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

// ErrMalformed is matched (errors.Is) by every error Decode returns, and so
// by Read's errors for a frame that arrived whole but holds no valid
// message; a peer's broken stream is not malformed.
var ErrMalformed = errors.New("malformed message")

// malformed marks a decoding error as ErrMalformed and keeps its text.
type malformed struct{ error }

func (malformed) Is(target error) bool { return target == ErrMalformed }
func (e malformed) Unwrap() error      { return e.error }

// Decode parses one frame payload (without its length prefix).
func Decode(payload []byte) (Message, error) {
	m, err := decode(payload)
	if err != nil {
		return nil, malformed{err}
	}
	return m, nil
}

func decode(payload []byte) (Message, error) {
	if len(payload) > MaxFrameSize {
		return nil, ErrFrameTooLarge
	}
	if typ, body, ok := splitEnvelope(payload); ok {
		if typ == TypeData {
			if m, ok := decodeDataBody(body); ok {
				return m, nil
			}
		}
		if m, err := decodeBody(typ, body); err == nil {
			return m, nil
		}
		// Whatever is wrong, the general path below says it the same way
		// for every spelling of the envelope.
	}
	var env envelope
	if err := json.Unmarshal(payload, &env); err != nil {
		return nil, fmt.Errorf("decoding frame: %w", err)
	}
	return decodeBody(env.Type, env.Body)
}

// decodeBody decodes and validates the body of a message of type typ.
func decodeBody(typ Type, body []byte) (Message, error) {
	newMsg, ok := registry[typ]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, typ)
	}
	m := newMsg()
	if len(body) > 0 && string(body) != "null" {
		if err := json.Unmarshal(body, m); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", typ, err)
		}
	}
	if v, ok := m.(validator); ok {
		if err := v.validate(); err != nil {
			return nil, fmt.Errorf("invalid %s: %w", typ, err)
		}
	}
	return m, nil
}

// decodeDataBody decodes a Data body as Encode writes it,
// {"bytes":"<base64>"}, straight from base64: uploads are decoded in the
// guest, where encoding/json's scanning was the slowest part of the whole
// transfer (65 MB/s natively, ~4 MB/s under TCG). Anything else, including
// a string with JSON escapes or line breaks (which base64 would skip but
// JSON refuses), is left to the general path.
func decodeDataBody(body []byte) (*Data, bool) {
	rest, ok := bytes.CutPrefix(body, []byte(`{"bytes":"`))
	if !ok {
		return nil, false
	}
	b64, ok := bytes.CutSuffix(rest, []byte(`"}`))
	if !ok || bytes.ContainsAny(b64, "\\\r\n\"") {
		return nil, false
	}
	d := &Data{Bytes: make([]byte, base64.StdEncoding.DecodedLen(len(b64)))}
	n, err := base64.StdEncoding.Decode(d.Bytes, b64)
	if err != nil {
		return nil, false
	}
	d.Bytes = d.Bytes[:n]
	if d.validate() != nil {
		return nil, false
	}
	return d, true
}

// splitEnvelope recognises the envelope exactly as Encode writes it,
// {"type":"<name>","body":<body>}, and returns its parts without parsing
// the body. Decoding the body then scans it once, where unmarshalling the
// envelope first would scan it twice more; for bulk data (up to a megabyte a
// frame) that is most of the cost of a transfer. Anything else is left to
// the general path.
func splitEnvelope(payload []byte) (Type, []byte, bool) {
	rest, ok := bytes.CutPrefix(payload, []byte(`{"type":"`))
	if !ok {
		return "", nil, false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return "", nil, false
	}
	name := rest[:end]
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c == '_') { // so nothing to unescape
			return "", nil, false
		}
	}
	rest, ok = bytes.CutPrefix(rest[end+1:], []byte(`,"body":`))
	if !ok {
		return "", nil, false
	}
	body, ok := bytes.CutSuffix(rest, []byte("}"))
	if !ok || len(body) == 0 { // "body":} is no JSON
		return "", nil, false
	}
	return Type(name), body, true
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
		return nil, fmt.Errorf("unexpected %s message, want %s: %w", m.Type(), want.Type(), ErrMalformed)
	}
	return v, nil
}

// PortName is the name of the virtio-serial port that carries the channel;
// the guest finds its device through /sys/class/virtio-ports/*/name.
const PortName = "org.agentiso.channel.0"
