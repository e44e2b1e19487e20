package vm

import (
	"context"
	"errors"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/protocol"
)

// testDial is the real guest channel, as the daemon dials it.
var testDial DialFunc = func(ctx context.Context, path string) (Channel, error) {
	return channel.Dial(ctx, path, channel.Options{})
}

// testExec runs argv in the guest of a VM dialled with testDial and returns
// its stdout and exit code.
func testExec(ctx context.Context, ch Channel, argv ...string) (string, int, error) {
	c, ok := ch.(*channel.Client)
	if !ok {
		return "", 0, errors.New("not a channel.Client")
	}
	res, err := c.Exec(ctx, protocol.Exec{Argv: argv, MaxOutputBytes: 1 << 20}, nil)
	if err != nil {
		return "", 0, err
	}
	return res.Stdout, res.Exit.ExitCode, nil
}
