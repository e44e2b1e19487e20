package guest

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// fsError classifies err, from doing something to path, for the host: the
// message names the path and says what the system said, the class lets
// the caller tell a missing file from a refused one.
func fsError(doing, path string, err error) error {
	return errdefs.With(classOf(err), fmt.Sprintf("%s %s: %s", doing, path, errText(err)), err)
}

// classOf maps a system error to an error class.
func classOf(err error) errdefs.Class {
	if errors.Is(err, exec.ErrNotFound) {
		return errdefs.NotFound
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return errdefs.Internal
	}
	switch errno {
	case syscall.ENOENT:
		return errdefs.NotFound
	case syscall.EACCES, syscall.EPERM, syscall.EROFS:
		return errdefs.PermissionDenied
	case syscall.EISDIR, syscall.ENOTDIR, syscall.EINVAL, syscall.ENAMETOOLONG, syscall.ELOOP, syscall.ENOEXEC:
		return errdefs.Invalid
	case syscall.EEXIST, syscall.ENOTEMPTY, syscall.ETXTBSY, syscall.EBUSY:
		return errdefs.Conflict
	case syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG, syscall.EMFILE, syscall.ENFILE:
		return errdefs.Quota
	}
	return errdefs.Internal
}

// errText is the system's own words for err ("no such file or directory"),
// without the operation and path that os wraps around them.
func errText(err error) string {
	if errors.Is(err, exec.ErrNotFound) {
		return "executable file not found in PATH"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}
