// Package errdefs is the closed set of error classes that every edge of
// agentiso maps once: a tool error for MCP, a status for HTTP, an exit code
// for the CLI.
//
// An error made here carries two texts: a public message, safe to show to the
// agent or person who made the call (it names the bad field, never a secret or
// another session's object), and an optional internal cause that only goes to
// the daemon log. This keeps what a caller sees apart from internal detail.
package errdefs

import (
	"errors"
	"fmt"
)

// Class is the kind of failure, as an edge needs to know it.
type Class int

// The classes. Internal is the zero value: an error nobody classified is an
// internal error, and its text is never shown to a caller.
const (
	Internal Class = iota
	Invalid
	NotFound
	Conflict
	Quota
	RateLimited
	Unavailable
	Timeout
	PermissionDenied
)

var classNames = map[Class]string{
	Internal:         "internal",
	Invalid:          "invalid",
	NotFound:         "not_found",
	Conflict:         "conflict",
	Quota:            "quota",
	RateLimited:      "rate_limited",
	Unavailable:      "unavailable",
	Timeout:          "timeout",
	PermissionDenied: "permission_denied",
}

// String returns the class's stable name, as used on the wire.
func (c Class) String() string {
	if s, ok := classNames[c]; ok {
		return s
	}
	return "internal"
}

// ParseClass is the inverse of String; unknown names give Internal.
func ParseClass(s string) Class {
	for c, name := range classNames {
		if name == s {
			return c
		}
	}
	return Internal
}

// Error is a classified error with a public message and an internal cause.
type Error struct {
	Class Class
	// Msg is safe to show to the caller.
	Msg string
	// Cause is internal detail for the log; it may be nil.
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Msg + ": " + e.Cause.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Cause }

func newf(c Class, format string, args ...any) error {
	return &Error{Class: c, Msg: fmt.Sprintf(format, args...)}
}

// Invalidf reports bad input; the message names the offending field.
func Invalidf(format string, args ...any) error { return newf(Invalid, format, args...) }

// NotFoundf reports a missing object.
func NotFoundf(format string, args ...any) error { return newf(NotFound, format, args...) }

// Conflictf reports an object in the wrong state or a duplicate.
func Conflictf(format string, args ...any) error { return newf(Conflict, format, args...) }

// Quotaf reports an exceeded limit.
func Quotaf(format string, args ...any) error { return newf(Quota, format, args...) }

// RateLimitedf reports a rate limit hit.
func RateLimitedf(format string, args ...any) error { return newf(RateLimited, format, args...) }

// Unavailablef reports a dependency that is not there (a missing image, a dead VM).
func Unavailablef(format string, args ...any) error { return newf(Unavailable, format, args...) }

// Timeoutf reports a deadline that passed.
func Timeoutf(format string, args ...any) error { return newf(Timeout, format, args...) }

// PermissionDeniedf reports a refused caller.
func PermissionDeniedf(format string, args ...any) error {
	return newf(PermissionDenied, format, args...)
}

// With returns a classified error whose public message is msg and whose
// internal cause is cause.
func With(c Class, msg string, cause error) error {
	return &Error{Class: c, Msg: msg, Cause: cause}
}

// ClassOf returns the class of the first classified error in err's chain, or
// Internal.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return Internal
}

// Is reports whether err's chain holds an error of class c.
func Is(err error, c Class) bool {
	return err != nil && ClassOf(err) == c
}

// Public returns the text a caller may see: the public message of the first
// classified error in the chain, or a generic text for unclassified errors.
func Public(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Class != Internal {
		return e.Msg
	}
	return "internal error (details are in the daemon log)"
}
