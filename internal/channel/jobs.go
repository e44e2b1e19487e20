package channel

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/agentiso/agentiso/internal/protocol"
)

// SetEnv changes the guest's persistent environment (held in the agent's
// memory only) and returns the names it now holds.
func (c *Client) SetEnv(ctx context.Context, m protocol.SetEnv) ([]string, error) {
	res, err := roundTrip[protocol.EnvSet](ctx, c, "setting the environment", &m)
	if err != nil {
		return nil, err
	}
	return res.Names, nil
}

// StartJob starts a background job. It returns once the job runs; the job
// outlives ctx, this call and the session.
func (c *Client) StartJob(ctx context.Context, m protocol.JobStart) (*protocol.JobStatus, error) {
	return roundTrip[protocol.JobStatus](ctx, c, "starting "+argv0(m.Argv)+" in the background", &m)
}

// JobOutput is a poll's answer: the job's status and the output the guest
// keeps of it (the last bytes of each stream).
type JobOutput struct {
	Status         protocol.JobStatus
	Stdout, Stderr string
}

// PollJob returns a job's status and output so far. A guest that sends more
// output than a job may keep (protocol.MaxJobOutputBytes per stream) breaks
// the protocol.
func (c *Client) PollJob(ctx context.Context, id uint32) (*JobOutput, error) {
	st, err := c.open(ctx, "polling job "+strconv.FormatUint(uint64(id), 10))
	if err != nil {
		return nil, err
	}
	defer st.close()
	if err := st.send(&protocol.JobPoll{JobID: id}); err != nil {
		return nil, st.fail(err)
	}
	var out [2]strings.Builder // stdout, stderr
	for {
		m, err := protocol.Read(st)
		if err != nil {
			return nil, st.fail(err)
		}
		switch m := m.(type) {
		case *protocol.Output:
			b := &out[0]
			if m.Stream == protocol.Stderr {
				b = &out[1]
			}
			// U+FFFD replacements may make the text a little longer
			// than the bytes the guest kept.
			if b.Len()+len(m.Data) > 3*protocol.MaxJobOutputBytes {
				return nil, st.fail(fmt.Errorf("the guest sent more output than a job keeps: %w", protocol.ErrMalformed))
			}
			b.WriteString(m.Data)
		case *protocol.JobStatus:
			if m.JobID != id {
				return nil, st.fail(fmt.Errorf("status of job %d in answer to a poll of job %d: %w", m.JobID, id, protocol.ErrMalformed))
			}
			return &JobOutput{Status: *m, Stdout: out[0].String(), Stderr: out[1].String()}, nil
		case *protocol.Error:
			return nil, st.fail(m)
		default:
			return nil, st.fail(fmt.Errorf("unexpected %s message in a job's output: %w", m.Type(), protocol.ErrMalformed))
		}
	}
}

// KillJob sends sig (a name protocol.ParseSignal returns) to a job's
// process group and returns its status once it has ended or the guest's
// short wait has passed.
func (c *Client) KillJob(ctx context.Context, id uint32, sig string) (*protocol.JobStatus, error) {
	return roundTrip[protocol.JobStatus](ctx, c, "signalling job "+strconv.FormatUint(uint64(id), 10), &protocol.JobKill{JobID: id, Signal: sig})
}
