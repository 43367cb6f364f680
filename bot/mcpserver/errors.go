package mcpserver

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The SDK checks a call's arguments against the tool's input schema before the
// tool runs, and answers a call that breaks it with a tool error in the
// validator's words ("validating "arguments": validating root: validating
// /properties/waitSeconds: maximum: 601/1 is greater than 600.000000").
// plainArgumentErrors says the same in the words the tools use for their own
// checks: invalid argument "waitSeconds": 601 is greater than 600.
func plainArgumentErrors(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		res, err := next(ctx, method, req)
		r, ok := res.(*mcp.CallToolResult)
		if err != nil || !ok || !r.IsError || len(r.Content) != 1 {
			return res, err
		}
		if tc, ok := r.Content[0].(*mcp.TextContent); ok && strings.HasPrefix(tc.Text, `validating "arguments": `) {
			tc.Text = plainArgumentError(tc.Text)
		}
		return res, err
	}
}

var (
	propertyErr = regexp.MustCompile(`validating (/properties/[^:]*): `)
	keyword     = regexp.MustCompile(`^[a-zA-Z]+: `)
	missingErr  = regexp.MustCompile(`required: missing properties: \[(.*)\]`)
	unknownErr  = regexp.MustCompile(`unexpected additional properties \[(.*)\]`)
	ratio       = regexp.MustCompile(`\b(-?\d+)/1\b`)
	decimals    = regexp.MustCompile(`\b(-?\d+)\.0+\b`)
)

// plainArgumentError rewrites one validator message; one it does not know is
// kept, less its prefix.
func plainArgumentError(msg string) string {
	msg = strings.TrimPrefix(msg, `validating "arguments": `)
	var property string
	if all := propertyErr.FindAllStringSubmatchIndex(msg, -1); all != nil {
		// The innermost property: /properties/groups/items/properties/min
		// is groups.min.
		last := all[len(all)-1]
		path := strings.ReplaceAll(msg[last[2]:last[3]], "/items", "")
		property = strings.Join(strings.Split(strings.TrimPrefix(path, "/properties/"), "/properties/"), ".")
		msg = keyword.ReplaceAllString(msg[last[1]:], "")
	} else {
		msg = strings.TrimPrefix(msg, "validating root: ")
	}
	msg = decimals.ReplaceAllString(ratio.ReplaceAllString(msg, "$1"), "$1")
	switch m := missingErr.FindStringSubmatch(msg); {
	case m != nil && property == "":
		return fmt.Sprintf("missing required argument %s", m[1])
	case m != nil:
		return fmt.Sprintf("invalid argument %q: missing %s", property, m[1])
	}
	if m := unknownErr.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("unknown argument %s: see the tool's input schema for the arguments it takes", m[1])
	}
	if property != "" {
		return fmt.Sprintf("invalid argument %q: %s (see the tool's input schema)", property, msg)
	}
	return "invalid arguments: " + msg
}
