package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzDecode checks that no payload makes Decode panic, and that whatever it
// accepts survives an encode and a second decode unchanged (Decode may
// normalise, e.g. invalid UTF-8 to U+FFFD, but only once).
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		frame, err := Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame[4:])
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := Decode(payload)
		if err != nil {
			return
		}
		// The fast path must agree with unmarshalling the envelope.
		var env envelope
		if err := json.Unmarshal(payload, &env); err != nil {
			t.Fatalf("Decode accepted what is not JSON: %v", err)
		}
		general, err := decodeBody(env.Type, env.Body)
		if err != nil {
			t.Fatalf("Decode accepted what the general path refuses: %v", err)
		}
		if diff := cmp.Diff(general, m, netipComparers...); diff != "" {
			t.Fatalf("fast and general paths differ (-general +fast):\n%s", diff)
		}
		frame, err := Encode(m)
		if errors.Is(err, ErrFrameTooLarge) {
			return // normalisation grew a frame that was at the limit
		}
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", m, err)
		}
		again, err := Decode(frame[4:])
		if err != nil {
			t.Fatalf("re-decoding %s: %v", frame[4:], err)
		}
		// An empty map and none are the same message (omitempty).
		if diff := cmp.Diff(m, again, append(netipComparers, cmpopts.EquateEmpty())...); diff != "" {
			t.Fatalf("second round trip changed the message:\n%s", diff)
		}
	})
}

// FuzzRead feeds Read arbitrary byte streams: it must not panic, must refuse
// a declared length over MaxFrameSize, and must consume exactly one frame
// when it succeeds.
func FuzzRead(f *testing.F) {
	for _, m := range sampleMessages() {
		frame, err := Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame)
	}
	f.Add(binary.BigEndian.AppendUint32(nil, 2<<30))
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := bytes.NewReader(stream)
		_, err := Read(r)
		if len(stream) >= 4 && binary.BigEndian.Uint32(stream) > MaxFrameSize && !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("declared length %d: %v, want ErrFrameTooLarge", binary.BigEndian.Uint32(stream), err)
		}
		if err == nil {
			n := binary.BigEndian.Uint32(stream)
			if consumed := len(stream) - r.Len(); consumed != 4+int(n) {
				t.Fatalf("consumed %d bytes of a %d-byte frame", consumed, 4+n)
			}
		}
		if err == io.EOF && len(stream) != 0 {
			t.Fatalf("bare io.EOF after %d bytes: only a clean end between frames may say so", len(stream))
		}
	})
}
