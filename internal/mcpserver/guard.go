package mcpserver

import (
	"context"
	"encoding/json"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// Limiter decides whether a session may make a call now (package session).
// A refusal is an errdefs.RateLimited error.
type Limiter interface {
	Allow(sessionID, tool, action string) error
}

// Activity learns when a session's requests start and end (package
// session), so that a session busy with a long call is not taken for gone.
type Activity interface {
	Begin(sessionID string)
	End(sessionID string)
}

// guard is the middleware in front of every request of the connection. It
// records the session's activity, and it puts every tool call through the
// rate limiter before anything else happens: before the tool is looked up
// and before its arguments are decoded or validated, so no tool, present or
// added later, and no malformed call can skip it (findings M-21, L-13). A
// refused call is audited and answered with a tool error that says which
// limit was hit and when to retry.
func (t *tools) guard(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if t.d.Activity != nil {
			t.d.Activity.Begin(t.caller.SessionID)
			defer t.d.Activity.End(t.caller.SessionID)
		}
		if method != "tools/call" {
			return next(ctx, method, req)
		}
		call, ok := req.(*mcp.CallToolRequest)
		if !ok || call.Params == nil {
			return nil, errdefs.Invalidf("tools/call: malformed request")
		}
		tool := call.Params.Name
		// Large structured input is bounded by its length before any
		// of it is decoded (L-15); the refusal is still rate limited.
		sizeErr := checkArgumentSize(tool, call.Params.Arguments)
		if sizeErr != nil {
			call.Params.Arguments = nil
		}
		// Only the fields the limit and the audit need; a call whose
		// arguments do not decode is still limited, as the default class.
		var args struct {
			Action      string `json:"action"`
			WorkspaceID string `json:"workspace_id"`
		}
		_ = json.Unmarshal(call.Params.Arguments, &args)
		err := t.d.Limiter.Allow(t.caller.SessionID, tool, args.Action)
		if err == nil && sizeErr != nil {
			err = sizeErr
		}
		if err != nil {
			if tool == "" {
				tool = "(no tool name)"
			}
			if t.d.Audit != nil {
				t.d.Audit(ctx, AuditRecord{Caller: t.caller, Tool: tool, Target: args.WorkspaceID, Err: err})
			}
			t.d.Logger.Debug("tool call refused by the guard", "tool", tool, "err", err)
			return &mcp.CallToolResult{
				IsError: true,
				Content: []mcp.Content{&mcp.TextContent{Text: errdefs.Public(err)}},
			}, nil
		}
		if t.d.Scope != nil {
			if err := t.d.Scope.check(tool, call.Params.Arguments); err != nil {
				if t.d.Audit != nil {
					t.d.Audit(ctx, AuditRecord{Caller: t.caller, Tool: tool, Target: args.WorkspaceID, Err: err})
				}
				return &mcp.CallToolResult{
					IsError: true,
					Content: []mcp.Content{&mcp.TextContent{Text: errdefs.Public(err)}},
				}, nil
			}
		}
		return next(ctx, method, req)
	}
}
