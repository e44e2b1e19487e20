package testdaemon

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Call invokes tool with args on s and decodes its structured result into
// a T. A protocol error and a tool error (IsError, its text in the error)
// are both errors.
func Call[T any](ctx context.Context, s *mcp.ClientSession, tool string, args map[string]any) (T, error) {
	var out T
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return out, fmt.Errorf("%s: protocol error: %w", tool, err)
	}
	if res.IsError {
		return out, fmt.Errorf("%s: tool error: %s", tool, Text(res))
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("%s: decoding result %s: %w", tool, b, err)
	}
	return out, nil
}

// Text is the text content of a tool result, joined.
func Text(res *mcp.CallToolResult) string {
	var sb strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			sb.WriteString(tc.Text)
		}
	}
	return sb.String()
}
