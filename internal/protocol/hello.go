package protocol

import (
	"bytes"
	"io"
)

// A session hello starts every channel session. The port under the channel
// outlives sessions: a daemon restart or a quick redial can leave bytes of
// the old session in flight either way (the guest's writes block while no
// host is connected and go to whichever host connects next; a host's first
// bytes can reach the guest before it has noticed the old host leaving). So
// each side marks where its session starts, and reads nothing before the
// other's mark:
//
//   - the host, on connecting, writes HostHello with a fresh nonce;
//   - the guest, on reading a HostHello, ends the session it had, writes
//     GuestHello with the same nonce, and starts a new session;
//   - the host discards what it reads until the GuestHello with its nonce.
//
// A hello is HelloSize bytes: four 0xFF bytes, "agh", the kind ('H' or 'G'),
// and the nonce. No session traffic can contain four 0xFF bytes in a row:
// frames hold JSON (Go's encoder never writes 0xFF) behind a length below
// 2^21, and yamux headers start with version 0 and carry small flags,
// stream ids, lengths and window updates.
const HelloSize = 16

// HelloKind says which side a hello comes from.
type HelloKind byte

// The hello kinds.
const (
	HostHelloKind  HelloKind = 'H'
	GuestHelloKind HelloKind = 'G'
)

// Nonce ties a guest's hello to the host connection it answers.
type Nonce [8]byte

// helloFixed is the part of a hello before its kind.
var helloFixed = []byte{0xFF, 0xFF, 0xFF, 0xFF, 'a', 'g', 'h'}

// Hello returns the hello of kind with nonce.
func Hello(kind HelloKind, nonce Nonce) []byte {
	b := make([]byte, 0, HelloSize)
	b = append(b, helloFixed...)
	b = append(b, byte(kind))
	return append(b, nonce[:]...)
}

// SessionReader splits a byte stream into sessions at the hellos of one
// kind. Next skips to the next hello; Read then returns the session's bytes
// up to the hello after it, and io.EOF there. An io.EOF of the underlying
// stream is passed on as it is, so a reader that returns more data later
// (the guest's port, when a host connects again) can be read on.
type SessionReader struct {
	r      io.Reader
	prefix []byte // helloFixed and the kind
	store  []byte // the buffer reads land in
	buf    []byte // read from r and not yet consumed, within store
	ended  bool   // the current session reached the next hello
}

// readChunk is how much a SessionReader reads from its stream at once.
const readChunk = 64 << 10

// NewSessionReader returns a SessionReader for the hellos of kind in r.
func NewSessionReader(r io.Reader, kind HelloKind) *SessionReader {
	return &SessionReader{
		r:      r,
		prefix: append(append([]byte(nil), helloFixed...), byte(kind)),
		store:  make([]byte, readChunk),
		ended:  true,
	}
}

// Next discards bytes up to and including the next hello and returns its
// nonce; reads then return the new session's bytes.
func (s *SessionReader) Next() (Nonce, error) {
	for {
		if i := bytes.Index(s.buf, s.prefix); i >= 0 && len(s.buf)-i >= HelloSize {
			var n Nonce
			copy(n[:], s.buf[i+len(s.prefix):i+HelloSize])
			s.buf = s.buf[i+HelloSize:]
			s.ended = false
			return n, nil
		}
		s.buf = s.buf[len(s.buf)-s.partialHello():]
		if err := s.fill(); err != nil {
			return Nonce{}, err
		}
	}
}

// Read returns bytes of the current session, and io.EOF once it has reached
// the next hello.
func (s *SessionReader) Read(p []byte) (int, error) {
	if s.ended {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		avail := len(s.buf) - s.partialHello()
		if i := bytes.Index(s.buf, s.prefix); i >= 0 {
			avail = i
			if i == 0 && len(s.buf) >= HelloSize {
				s.ended = true
				return 0, io.EOF
			}
		}
		if avail > 0 {
			n := copy(p, s.buf[:avail])
			s.buf = s.buf[n:]
			return n, nil
		}
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
}

// fill reads once from the stream. It is called only when buf holds less
// than a hello, which it first moves to the start of store.
func (s *SessionReader) fill() error {
	k := copy(s.store, s.buf)
	n, err := s.r.Read(s.store[k:])
	s.buf = s.store[:k+n]
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// partialHello is the length of the longest end of buf that could be the
// start of a hello still arriving: those bytes are held back.
func (s *SessionReader) partialHello() int {
	for k := min(len(s.buf), HelloSize-1); k > 0; k-- {
		tail := s.buf[len(s.buf)-k:]
		if bytes.HasPrefix(tail, s.prefix[:min(k, len(s.prefix))]) {
			return k
		}
	}
	return 0
}
