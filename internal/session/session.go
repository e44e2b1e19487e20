// Package session holds what the daemon knows about the clients it serves
// beyond their workspaces: how much each may ask for (quotas), how fast
// (rate limits per session and for all sessions together), whether a session
// is still there (its activity, its standing), and so who may adopt the
// workspaces a session leaves behind.
//
// Sessions themselves are made by the daemon, one per connection, and
// stored by package state; nothing here lets a client name one.
package session
