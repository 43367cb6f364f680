package approval_test

import (
	"slices"
	"testing"
	"time"

	"approvalbot/bot/approval"
)

// vote is a vote by who, cast at a fixed time.
func vote(who string, c approval.Choice) approval.Vote {
	return approval.Vote{By: who, Choice: c, Channel: approval.ChannelEmail, At: start}
}

func TestTally(t *testing.T) {
	const (
		a, b, c, req = "a@example.com", "b@example.com", "c@example.com", "req@example.com"
	)
	yes, no := approval.Approve, approval.Reject
	abc := []string{a, b, c}
	groups := []approval.Group{
		{Name: "eng", Approvers: []string{a, b}, Min: 1},
		{Name: "security", Approvers: []string{b, c}, Min: 1},
	}
	tests := []struct {
		name      string
		approvers []string
		requester string
		rule      approval.Rule
		votes     []approval.Vote
		want      approval.Status
		needed    int
		required  int
	}{
		{"any: no votes", abc, "", approval.Rule{Policy: approval.PolicyAny}, nil, approval.StatusPending, 1, 1},
		{"any: one approval approves", abc, "", approval.Rule{Policy: approval.PolicyAny}, []approval.Vote{vote(b, yes)}, approval.StatusApproved, 0, 1},
		{"any: one reject rejects", abc, "", approval.Rule{Policy: approval.PolicyAny}, []approval.Vote{vote(b, no)}, approval.StatusRejected, 1, 1},
		{"any, reject impossible: one reject of three waits", abc, "", approval.Rule{Policy: approval.PolicyAny, RejectPolicy: approval.RejectImpossible},
			[]approval.Vote{vote(a, no)}, approval.StatusPending, 1, 1},
		{"any, reject impossible: all reject", abc, "", approval.Rule{Policy: approval.PolicyAny, RejectPolicy: approval.RejectImpossible},
			[]approval.Vote{vote(a, no), vote(b, no), vote(c, no)}, approval.StatusRejected, 1, 1},
		{"all: two of three", abc, "", approval.Rule{Policy: approval.PolicyAll}, []approval.Vote{vote(a, yes), vote(b, yes)}, approval.StatusPending, 1, 3},
		{"all: three of three", abc, "", approval.Rule{Policy: approval.PolicyAll}, []approval.Vote{vote(a, yes), vote(b, yes), vote(c, yes)}, approval.StatusApproved, 0, 3},
		{"all: a reject rejects", abc, "", approval.Rule{Policy: approval.PolicyAll}, []approval.Vote{vote(a, yes), vote(c, no)}, approval.StatusRejected, 2, 3},
		{"all, reject impossible: one reject makes it impossible", abc, "", approval.Rule{Policy: approval.PolicyAll, RejectPolicy: approval.RejectImpossible},
			[]approval.Vote{vote(c, no)}, approval.StatusRejected, 3, 3},
		{"quorum:2: one approval", abc, "", approval.Rule{Policy: approval.PolicyQuorum(2)}, []approval.Vote{vote(a, yes)}, approval.StatusPending, 1, 2},
		{"quorum:2: two approvals", abc, "", approval.Rule{Policy: approval.PolicyQuorum(2)}, []approval.Vote{vote(a, yes), vote(c, yes)}, approval.StatusApproved, 0, 2},
		{"quorum:2, reject impossible: one reject still possible", abc, "", approval.Rule{Policy: approval.PolicyQuorum(2), RejectPolicy: approval.RejectImpossible},
			[]approval.Vote{vote(a, no), vote(b, yes)}, approval.StatusPending, 1, 2},
		{"quorum:2, reject impossible: two rejects", abc, "", approval.Rule{Policy: approval.PolicyQuorum(2), RejectPolicy: approval.RejectImpossible},
			[]approval.Vote{vote(a, no), vote(b, no)}, approval.StatusRejected, 2, 2},
		{"quorum:2: requester's place does not count", []string{a, b, req}, req, approval.Rule{Policy: approval.PolicyQuorum(2), RejectPolicy: approval.RejectImpossible},
			[]approval.Vote{vote(a, no)}, approval.StatusRejected, 2, 2},
		{"all: the requester counts when self-approval is allowed", []string{a, req}, req, approval.Rule{Policy: approval.PolicyAll, AllowSelfApproval: true},
			[]approval.Vote{vote(a, yes)}, approval.StatusPending, 1, 2},
		{"groups: one group satisfied", abc, "", approval.Rule{Groups: groups}, []approval.Vote{vote(a, yes)}, approval.StatusPending, 1, 2},
		{"groups: a member of two groups satisfies both", abc, "", approval.Rule{Groups: groups}, []approval.Vote{vote(b, yes)}, approval.StatusApproved, 0, 2},
		{"groups: one from each", abc, "", approval.Rule{Groups: groups}, []approval.Vote{vote(a, yes), vote(c, yes)}, approval.StatusApproved, 0, 2},
		{"groups, reject impossible: security can no longer approve", abc, "", approval.Rule{Groups: groups, RejectPolicy: approval.RejectImpossible},
			[]approval.Vote{vote(a, yes), vote(b, no), vote(c, no)}, approval.StatusRejected, 1, 2},
		{"groups, reject impossible: a reject by a member of both leaves both possible", abc, "", approval.Rule{Groups: groups, RejectPolicy: approval.RejectImpossible},
			[]approval.Vote{vote(b, no)}, approval.StatusPending, 2, 2},
		{"groups, reject impossible: one reject in a group with another member", []string{a, b, c}, "",
			approval.Rule{Groups: []approval.Group{{Name: "eng", Approvers: []string{a, b}, Min: 1}, {Name: "ops", Approvers: []string{c}, Min: 1}}, RejectPolicy: approval.RejectImpossible},
			[]approval.Vote{vote(a, no)}, approval.StatusPending, 2, 2},
		{"groups: min 2", abc, "", approval.Rule{Groups: []approval.Group{{Name: "all", Approvers: abc, Min: 2}}}, []approval.Vote{vote(a, yes)}, approval.StatusPending, 1, 2},
		{"Slack vote matched by profile email", abc, "", approval.Rule{Policy: approval.PolicyAll},
			[]approval.Vote{vote(a, yes), vote(b, yes), {By: "U0CCCCCC01", Email: "C@Example.com", Choice: yes, At: start}}, approval.StatusApproved, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &approval.Request{Approvers: tt.approvers, Requester: tt.requester, Rule: tt.rule, Votes: tt.votes, Status: approval.StatusPending, ExpiresAt: start.Add(time.Hour)}
			p := r.Tally()
			if p.Outcome != tt.want || p.Needed != tt.needed || p.Required != tt.required {
				t.Errorf("got %s, needed %d of %d; want %s, needed %d of %d", p.Outcome, p.Needed, p.Required, tt.want, tt.needed, tt.required)
			}
		})
	}
}

// TestQuickTokens: the tokens whose next vote alone closes a request are
// those whose vote the general path would count as closing it, whatever the
// rule and the votes so far.
func TestQuickTokens(t *testing.T) {
	const (
		a, b, c, req = "a@example.com", "b@example.com", "c@example.com", "req@example.com"
	)
	yes, no := approval.Approve, approval.Reject
	abc := []string{a, b, c}
	groups := []approval.Group{{Name: "eng", Approvers: []string{a, b}, Min: 1}, {Name: "ops", Approvers: []string{c}, Min: 1}}
	tests := []struct {
		name            string
		approvers       []string
		requester       string
		rule            approval.Rule
		votes           []approval.Vote
		reject, approve []string // recipients by address
	}{
		{"any, no votes: every vote closes", abc, "", approval.Rule{Policy: approval.PolicyAny}, nil, abc, abc},
		{"any: not the requester's approval", []string{a, req}, req, approval.Rule{Policy: approval.PolicyAny}, nil, []string{a, req}, []string{a}},
		{"any, self-approval allowed", []string{a, req}, req, approval.Rule{Policy: approval.PolicyAny, AllowSelfApproval: true}, nil, []string{a, req}, []string{a, req}},
		{"quorum:2, no votes: only a reject closes", abc, "", approval.Rule{Policy: approval.PolicyQuorum(2)}, nil, abc, nil},
		{"quorum:2, one approval: the others' votes close", abc, "", approval.Rule{Policy: approval.PolicyQuorum(2)}, []approval.Vote{vote(a, yes)}, []string{b, c}, []string{b, c}},
		{"quorum:2, reject impossible, no votes: nothing closes", abc, "", approval.Rule{Policy: approval.PolicyQuorum(2), RejectPolicy: approval.RejectImpossible}, nil, nil, nil},
		{"quorum:2, reject impossible, one reject: a second reject closes, an approval does not", abc, "", approval.Rule{Policy: approval.PolicyQuorum(2), RejectPolicy: approval.RejectImpossible},
			[]approval.Vote{vote(a, no)}, []string{b, c}, nil},
		{"all, two of three: the last approval closes", abc, "", approval.Rule{Policy: approval.PolicyAll}, []approval.Vote{vote(a, yes), vote(b, yes)}, []string{c}, []string{c}},
		{"groups: eng approved, ops's approval closes", abc, "", approval.Rule{Groups: groups}, []approval.Vote{vote(a, yes)}, []string{b, c}, []string{c}},
		{"groups, reject impossible: only ops's reject closes", abc, "", approval.Rule{Groups: groups, RejectPolicy: approval.RejectImpossible}, nil, []string{c}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &approval.Request{Approvers: tt.approvers, Requester: tt.requester, Rule: tt.rule, Votes: tt.votes, Status: approval.StatusPending, ExpiresAt: start.Add(time.Hour)}
			for _, addr := range tt.approvers {
				r.Recipients = append(r.Recipients, approval.Recipient{Address: addr, Channel: approval.ChannelEmail, TokenHash: "hash of " + addr})
			}
			reject, approve := r.QuickTokens()
			if got, want := reject, hashes(tt.reject); !slices.Equal(got, want) {
				t.Errorf("reject = %v, want %v", got, want)
			}
			if got, want := approve, hashes(tt.approve); !slices.Equal(got, want) {
				t.Errorf("approve = %v, want %v", got, want)
			}
			closed := r.Clone()
			closed.Status = approval.StatusApproved
			if rj, ap := closed.QuickTokens(); rj != nil || ap != nil {
				t.Errorf("a closed request's quick tokens = %v, %v; want none", rj, ap)
			}
		})
	}
}

// hashes are the token hashes TestQuickTokens gives the recipients at addrs.
func hashes(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		out = append(out, "hash of "+a)
	}
	return out
}

func TestRuleDescribe(t *testing.T) {
	tests := []struct {
		rule approval.Rule
		n    int
		want string
	}{
		{approval.Rule{Policy: approval.PolicyAny}, 1, "the approver decides"},
		{approval.Rule{Policy: approval.PolicyAny}, 3, "one approval from any approver approves"},
		{approval.Rule{Policy: approval.PolicyAll}, 3, "every approver must approve"},
		{approval.Rule{Policy: approval.PolicyQuorum(2)}, 3, "2 of 3 approvers must approve"},
		{approval.Rule{Groups: []approval.Group{{Name: "eng", Min: 1}, {Name: "security", Min: 1}}}, 4, "one approval from each group: eng, security"},
		{approval.Rule{Groups: []approval.Group{{Name: "eng", Min: 2, Approvers: []string{"a", "b", "c"}}}}, 3, "approvals from each group: eng (2 of 3)"},
	}
	for _, tt := range tests {
		if got := tt.rule.Describe(tt.n); got != tt.want {
			t.Errorf("Describe(%+v, %d) = %q, want %q", tt.rule, tt.n, got, tt.want)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]approval.Policy{"": approval.PolicyAny, "ANY": approval.PolicyAny, " all ": approval.PolicyAll, "quorum:3": approval.PolicyQuorum(3)} {
		if got, err := approval.ParsePolicy(in); err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"majority", "quorum:0", "quorum:-1", "quorum:x", "quorum:"} {
		if _, err := approval.ParsePolicy(in); err == nil {
			t.Errorf("ParsePolicy(%q) accepted", in)
		}
	}
}
