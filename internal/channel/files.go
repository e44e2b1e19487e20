package channel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/agentiso/agentiso/internal/protocol"
)

// WriteFile uploads r to path in the guest, creating parents; the file
// appears whole or not at all. mode 0 keeps an existing file's mode (0644
// for a new one). size, when not negative, is the exact length of r, and
// the guest checks it. If the guest refuses part way (a full disk), the
// upload stops at once and its error is returned.
func (c *Client) WriteFile(ctx context.Context, path string, mode uint32, r io.Reader, size int64) error {
	doing := "writing " + path
	st, err := c.open(ctx, doing)
	if err != nil {
		return err
	}
	defer st.close()
	if err := st.send(&protocol.FileWrite{Path: path, Mode: mode, Size: size}); err != nil {
		return st.fail(err)
	}

	// The answer is read while sending: the guest answers early when it
	// fails, and then stops reading.
	answer := make(chan error, 1)
	go func() {
		_, err := protocol.ReadAs[protocol.OK](st)
		if err != nil {
			err = st.fail(err)
		}
		answer <- err
		st.SetWriteDeadline(time.Unix(1, 0)) // stop a send the guest no longer reads
	}()

	sendErr := sendData(st, r)
	if sendErr != nil {
		if errors.Is(sendErr, errReader) {
			// Closing the stream tells the guest the upload is off; it
			// removes what it received.
			st.Stream.Close()
		}
		select {
		case err := <-answer:
			if err != nil {
				return err // the guest's reason beats the broken send
			}
		default:
		}
		if errors.Is(sendErr, errReader) {
			return fmt.Errorf("%s: %w", doing, sendErr)
		}
		return st.fail(sendErr)
	}
	return <-answer
}

// errReader marks a failure of the caller's reader, as opposed to the stream.
var errReader = errors.New("reading the data to upload")

// sendData sends r as Data messages and a DataEnd.
func sendData(st *stream, r io.Reader) error {
	buf := make([]byte, protocol.ChunkSize)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if err := st.send(&protocol.Data{Bytes: buf[:n]}); err != nil {
				return err
			}
		}
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return st.send(&protocol.DataEnd{})
		case err != nil:
			return fmt.Errorf("%w: %w", errReader, err)
		}
	}
}

// ReadFile copies path in the guest to w, from offset and at most limit
// bytes (limit 0: to the end), and returns what the guest said of the
// file. A guest that sends more than limit is cut off.
func (c *Client) ReadFile(ctx context.Context, path string, offset, limit int64, w io.Writer) (*protocol.FileInfo, error) {
	st, err := c.open(ctx, "reading "+path)
	if err != nil {
		return nil, err
	}
	defer st.close()
	if err := st.send(&protocol.FileRead{Path: path, Offset: offset, Limit: limit}); err != nil {
		return nil, st.fail(err)
	}
	info, err := protocol.ReadAs[protocol.FileInfo](st)
	if err != nil {
		return nil, st.fail(err)
	}
	var got int64
	for {
		m, err := protocol.Read(st)
		if err != nil {
			return nil, st.fail(err)
		}
		switch m := m.(type) {
		case *protocol.Data:
			got += int64(len(m.Bytes))
			if limit > 0 && got > limit {
				return nil, st.fail(fmt.Errorf("the guest sent more than the %d bytes asked for: %w", limit, protocol.ErrMalformed))
			}
			if _, err := w.Write(m.Bytes); err != nil {
				return nil, fmt.Errorf("reading %s: passing its data on: %w", path, err)
			}
		case *protocol.DataEnd:
			return info, nil
		case *protocol.Error:
			return nil, st.fail(m)
		default:
			return nil, st.fail(fmt.Errorf("unexpected %s message in a file's data: %w", m.Type(), protocol.ErrMalformed))
		}
	}
}
