package mcpserver

import (
	"fmt"

	"github.com/google/jsonschema-go/jsonschema"

	"approvalbot/bot/approval"
)

// The tools' schemas: inferred from the Go types, then given the
// descriptions and limits an agent needs to call them right the first time.
// The SDK checks every call's arguments against them and answers a call that
// breaks them with a tool error naming the property.

func requestSchema() *jsonschema.Schema {
	s := schemaOf[RequestInput]()
	p := s.Properties
	describe(p, map[string]string{
		"title":          fmt.Sprintf("The question a person answers, in one line: what you are about to do (required, at most %d characters). Example: \"Run migration 042 on the prod database?\"", approval.MaxTitle),
		"details":        fmt.Sprintf("What the approvers need to judge it: what will change, why, the risk and how to undo it (at most %d characters).", approval.MaxDetails),
		"approvers":      fmt.Sprintf("Who may approve: email addresses, or Slack user IDs (U0123ABCD) when the bot has Slack; at most %d. Give approvers (with policy) or groups, not both.", approval.MaxApprovers),
		"policy":         "How many approvers must approve: \"any\" (one approval, the default), \"all\", or \"quorum:N\" (N distinct approvers).",
		"groups":         fmt.Sprintf("Instead of approvers and policy: groups of approvers that must each give at least min approvals (at most %d groups).", approval.MaxGroups),
		"rejectPolicy":   "When rejections reject: \"any\" (one rejection rejects, the default) or \"impossible\" (rejected only once the rule can no longer be met).",
		"timeoutSeconds": "How long the approvers have, in seconds: 60 (1 minute) to 2592000 (30 days); default 86400 (24 hours). The request expires after.",
		"links":          fmt.Sprintf("Links shown to the approvers: a diff, a runbook, a dashboard (at most %d).", approval.MaxLinks),
		"slackChannel":   "A Slack channel ID (C0123ABCD) to post the request to, when the bot has Slack.",
		"waitSeconds":    fmt.Sprintf("Wait up to this many seconds (0 to %d, default 0: answer at once) for the outcome. If your client limits how long a tool call may take, stay below that and wait with get_approval.", MaxWaitSeconds),
	})
	p["title"].MinLength, p["title"].MaxLength = ptr(1), ptr(approval.MaxTitle)
	p["details"].MaxLength = ptr(approval.MaxDetails)
	p["approvers"].MaxItems = ptr(approval.MaxApprovers)
	p["policy"].Pattern = `^(any|all|quorum:[1-9][0-9]*)$`
	p["groups"].MaxItems = ptr(approval.MaxGroups)
	g := p["groups"].Items.Properties
	describe(g, map[string]string{
		"name":      "The group's name, shown to the approvers (\"security\").",
		"approvers": "The group's members: email addresses or Slack user IDs.",
		"min":       "How many of its members must approve (default 1).",
	})
	g["name"].MinLength = ptr(1)
	g["approvers"].MinItems = ptr(1)
	g["min"].Minimum = ptr(1.0)
	p["rejectPolicy"].Enum = []any{"any", "impossible"}
	p["timeoutSeconds"].Minimum, p["timeoutSeconds"].Maximum = ptr(60.0), ptr(2592000.0)
	p["links"].MaxItems = ptr(approval.MaxLinks)
	describe(p["links"].Items.Properties, map[string]string{
		"label": "What the link is (\"diff\").",
		"url":   "An http or https address.",
	})
	p["waitSeconds"].Minimum, p["waitSeconds"].Maximum = ptr(0.0), ptr(float64(MaxWaitSeconds))
	return s
}

func getSchema() *jsonschema.Schema {
	s := schemaOf[GetInput]()
	p := s.Properties
	describe(p, map[string]string{
		"id":          "The request's id, as request_approval or list_approvals gave it.",
		"waitSeconds": fmt.Sprintf("Wait up to this many seconds (0 to %d, default 0: answer at once) until the request is no longer pending.", MaxWaitSeconds),
	})
	p["id"].MinLength = ptr(1)
	p["waitSeconds"].Minimum, p["waitSeconds"].Maximum = ptr(0.0), ptr(float64(MaxWaitSeconds))
	return s
}

func listSchema() *jsonschema.Schema {
	s := schemaOf[ListInput]()
	p := s.Properties
	describe(p, map[string]string{
		"status": "Which requests: \"pending\" (the default); \"approved\", \"rejected\", \"expired\", \"canceled\" or \"closed\" where the bot keeps a history.",
		"limit":  fmt.Sprintf("Requests per page, 1 to %d (default %d).", maxListLimit, DefaultListLimit),
		"cursor": "The nextCursor of the previous page; leave out for the first page.",
	})
	p["status"].Enum = []any{"pending", "approved", "rejected", "expired", "canceled", "closed"}
	p["limit"].Minimum, p["limit"].Maximum = ptr(1.0), ptr(float64(maxListLimit))
	return s
}

func cancelSchema() *jsonschema.Schema {
	s := schemaOf[CancelInput]()
	p := s.Properties
	describe(p, map[string]string{
		"id":     "The id of the pending request to withdraw.",
		"reason": fmt.Sprintf("Why it is no longer needed, shown to the approvers (at most %d characters).", approval.MaxCancelReason),
	})
	p["id"].MinLength = ptr(1)
	p["reason"].MaxLength = ptr(approval.MaxCancelReason)
	return s
}

func approvalSchema() *jsonschema.Schema {
	s := schemaOf[Approval]()
	describeApproval(s)
	return s
}

func describeApproval(s *jsonschema.Schema) {
	p := s.Properties
	describe(p, map[string]string{
		"id":        "The request's id: give it to get_approval and cancel_approval.",
		"status":    "pending, approved, rejected, expired or canceled. Go ahead only on approved.",
		"summary":   "The state in one sentence, with what to do next.",
		"requester": "Who asked (for requests made over MCP, this server's name for you).",
		"approvers": "Everyone who may vote.",
		"rule":      "When the votes approve, in words.",
		"progress":  "Approvals counted toward the rule, rejections, approvals still needed, approvals required in all.",
		"votes":     "Every vote cast, in order, with its comment.",
		"outcome":   "Present once the request is closed: who decided, how, when and with what comment; or why it expired or was canceled.",
		"unreached": "Approvers whose notification failed.",
		"expiresAt": "When the request expires if nobody decides.",
	})
	p["status"].Enum = []any{"pending", "approved", "rejected", "expired", "canceled"}
}

func listOutputSchema() *jsonschema.Schema {
	s := schemaOf[ListOutput]()
	describeApproval(s.Properties["approvals"].Items)
	describe(s.Properties, map[string]string{
		"approvals":  "The page's requests, newest first.",
		"nextCursor": "Give it as cursor for the next page; absent after the last page.",
	})
	return s
}

// schemaOf is the schema inferred from T, which the tools' types always
// give.
func schemaOf[T any]() *jsonschema.Schema {
	s, err := jsonschema.For[T](nil)
	if err != nil {
		panic(fmt.Sprintf("mcpserver: schema of %T: %v", *new(T), err)) // a programming error, caught by every test
	}
	return s
}

func describe(props map[string]*jsonschema.Schema, text map[string]string) {
	for name, d := range text {
		p, ok := props[name]
		if !ok {
			panic("mcpserver: no property " + name) // a programming error, caught by every test
		}
		p.Description = d
	}
}
