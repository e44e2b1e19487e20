package protocol

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// reads splits a byte stream into the pieces a reader returns, then
// reports io.EOF.
type reads struct{ pieces [][]byte }

func (r *reads) Read(p []byte) (int, error) {
	if len(r.pieces) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.pieces[0])
	if r.pieces[0] = r.pieces[0][n:]; len(r.pieces[0]) == 0 {
		r.pieces = r.pieces[1:]
	}
	return n, nil
}

// pieces cuts b every size bytes.
func pieces(b []byte, size int) [][]byte {
	var out [][]byte
	for len(b) > size {
		out = append(out, b[:size])
		b = b[size:]
	}
	return append(out, b)
}

func TestSessionReaderSplitsAtHellos(t *testing.T) {
	n1, n2 := Nonce{1, 2, 3}, Nonce{9, 9, 9, 9, 9, 9, 9, 9}
	var stream []byte
	stream = append(stream, "junk of an old session \xff\xff\xff"...)
	stream = append(stream, Hello(GuestHelloKind, Nonce{7})...) // the other kind is data
	stream = append(stream, Hello(HostHelloKind, n1)...)
	stream = append(stream, "first \xff\xff\xff\xffagG session"...)
	stream = append(stream, Hello(HostHelloKind, n2)...)
	stream = append(stream, "second"...)

	for _, size := range []int{1, 3, 7, 15, 16, 17, 1000} {
		s := NewSessionReader(&reads{pieces: pieces(stream, size)}, HostHelloKind)
		if _, err := s.Read(make([]byte, 10)); err != io.EOF {
			t.Fatalf("size %d: Read before any hello: %v, want io.EOF", size, err)
		}
		for i, want := range []struct {
			nonce Nonce
			data  string
		}{{n1, "first \xff\xff\xff\xffagG session"}, {n2, "second"}} {
			nonce, err := s.Next()
			if err != nil || nonce != want.nonce {
				t.Fatalf("size %d: session %d: Next = %v, %v", size, i, nonce, err)
			}
			got, err := io.ReadAll(s)
			if i == 1 && errors.Is(err, io.EOF) {
				err = nil
			}
			if err != nil || string(got) != want.data {
				t.Fatalf("size %d: session %d read %q, %v; want %q", size, i, got, err, want.data)
			}
		}
		if _, err := s.Next(); err != io.EOF {
			t.Errorf("size %d: Next at the end: %v, want io.EOF", size, err)
		}
	}
}

// A stream that ends (the host left) and goes on later (the next host)
// can be read on.
func TestSessionReaderReadsOnAfterEOF(t *testing.T) {
	r := &reads{}
	s := NewSessionReader(r, HostHelloKind)
	if _, err := s.Next(); err != io.EOF {
		t.Fatalf("Next on an empty stream: %v", err)
	}
	hello := Hello(HostHelloKind, Nonce{5})
	r.pieces = [][]byte{hello[:10]}
	if _, err := s.Next(); err != io.EOF {
		t.Fatalf("Next on half a hello: %v", err)
	}
	r.pieces = [][]byte{hello[10:], []byte("data")}
	if n, err := s.Next(); err != nil || n != (Nonce{5}) {
		t.Fatalf("Next after the stream went on: %v, %v", n, err)
	}
	buf := make([]byte, 10)
	if k, err := s.Read(buf); err != nil || string(buf[:k]) != "data" {
		t.Fatalf("Read = %q, %v", buf[:k], err)
	}
	if _, err := s.Read(buf); err != io.EOF {
		t.Fatalf("Read at the stream's end: %v", err)
	}
}

// No frame the protocol writes contains the start of a hello.
func TestFramesNeverContainAHello(t *testing.T) {
	marker := []byte{0xFF, 0xFF, 0xFF, 0xFF}
	msgs := append(sampleMessages(),
		&Output{Stream: Stdout, Data: "\xff\xff\xff\xff\xff"},
		&Data{Bytes: bytes.Repeat([]byte{0xFF}, 1000)},
		&Exec{Argv: []string{"\xff\xff\xff\xffagh"}, MaxOutputBytes: 1},
	)
	for _, m := range msgs {
		frame, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(frame, marker) {
			t.Errorf("a %s frame contains four 0xFF bytes: %q", m.Type(), frame)
		}
	}
}

// FuzzSessionReader checks that sessions put back together with their
// hellos give the stream from its first hello on, whatever the stream and
// however it is cut into reads; only a tail that could still become a hello
// may be held back when the stream ends.
func FuzzSessionReader(f *testing.F) {
	h := Hello(HostHelloKind, Nonce{1})
	f.Add(append(append([]byte("x"), h...), "abc\xff\xff"...), uint8(3))
	f.Add(append(append(append([]byte{}, h...), h...), h[:9]...), uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, size uint8) {
		s := NewSessionReader(&reads{pieces: pieces(stream, int(size)+1)}, HostHelloKind)
		var got []byte
		for {
			nonce, err := s.Next()
			if err != nil {
				break
			}
			got = append(got, Hello(HostHelloKind, nonce)...)
			data, _ := io.ReadAll(s)
			got = append(got, data...)
		}
		first := bytes.Index(stream, h[:8])
		for first >= 0 && len(stream)-first < HelloSize {
			first = -1
		}
		if first < 0 {
			if len(got) != 0 {
				t.Fatalf("sessions %q from a stream without a hello", got)
			}
			return
		}
		want := stream[first:]
		if !bytes.HasPrefix(want, got) {
			t.Fatalf("sessions %q are not the stream %q", got, want)
		}
		if held := want[len(got):]; len(held) >= HelloSize || (len(held) > 0 && !bytes.HasPrefix(h[:8], held[:min(len(held), 8)])) {
			t.Fatalf("held back %q at the end, which cannot become a hello", held)
		}
	})
}
