package approval

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Policy says how many approvals approve a request: "any" (one), "all" (every
// approver who may approve) or "quorum:N" (N distinct approvers). Requests with
// groups have no policy of their own.
type Policy string

// The policies without a parameter.
const (
	PolicyAny Policy = "any"
	PolicyAll Policy = "all"
)

// PolicyQuorum is the policy of n distinct approvals.
func PolicyQuorum(n int) Policy { return Policy("quorum:" + strconv.Itoa(n)) }

// ParsePolicy validates a policy; the empty string means PolicyAny. It checks
// the shape only; Rule.check compares a quorum with the approvers.
func ParsePolicy(s string) (Policy, error) {
	p := strings.ToLower(strings.TrimSpace(s))
	switch {
	case p == "" || p == string(PolicyAny):
		return PolicyAny, nil
	case p == string(PolicyAll):
		return PolicyAll, nil
	case strings.HasPrefix(p, "quorum:"):
		n, err := strconv.Atoi(strings.TrimPrefix(p, "quorum:"))
		if err != nil || n < 1 {
			return "", Invalidf("policy", "policy %q: quorum must be quorum:N with N a whole number of at least 1", s)
		}
		return PolicyQuorum(n), nil
	}
	return "", Invalidf("policy", "policy %q is unknown; use \"any\", \"all\" or \"quorum:N\"", s)
}

// Quorum returns N of a "quorum:N" policy, or 0.
func (p Policy) Quorum() int {
	n, err := strconv.Atoi(strings.TrimPrefix(string(p), "quorum:"))
	if err != nil || !strings.HasPrefix(string(p), "quorum:") {
		return 0
	}
	return n
}

// RejectPolicy says when rejections reject a request.
type RejectPolicy string

// The reject policies.
const (
	// RejectAny: one reject rejects.
	RejectAny RejectPolicy = "any"
	// RejectImpossible: rejected only once the approval rule can no longer be met.
	RejectImpossible RejectPolicy = "impossible"
)

// ParseRejectPolicy validates a reject policy; the empty string means RejectAny.
func ParseRejectPolicy(s string) (RejectPolicy, error) {
	switch p := RejectPolicy(strings.ToLower(strings.TrimSpace(s))); p {
	case "", RejectAny:
		return RejectAny, nil
	case RejectImpossible:
		return RejectImpossible, nil
	}
	return "", Invalidf("rejectPolicy", "rejectPolicy %q is unknown; use \"any\" or \"impossible\"", s)
}

// Group is a set of approvers of whom at least Min must approve.
type Group struct {
	Name      string
	Approvers []string
	Min       int
}

// Rule is how votes decide a request.
type Rule struct {
	// Policy applies when there are no groups.
	Policy Policy
	// Groups, when set, replace Policy: every group needs Min approvals from
	// its members.
	Groups            []Group
	RejectPolicy      RejectPolicy
	AllowSelfApproval bool
}

func (r Rule) clone() Rule {
	c := r
	c.Groups = make([]Group, len(r.Groups))
	for i, g := range r.Groups {
		g.Approvers = slices.Clone(g.Approvers)
		c.Groups[i] = g
	}
	if r.Groups == nil {
		c.Groups = nil
	}
	return c
}

// Describe says the rule in words: "2 of 3 approvers must approve".
func (r Rule) Describe(approvers int) string {
	if len(r.Groups) > 0 {
		names := make([]string, 0, len(r.Groups))
		allOne := true
		for _, g := range r.Groups {
			names = append(names, g.Name)
			allOne = allOne && g.Min == 1
		}
		if allOne {
			return "one approval from each group: " + strings.Join(names, ", ")
		}
		parts := make([]string, 0, len(r.Groups))
		for _, g := range r.Groups {
			parts = append(parts, fmt.Sprintf("%s (%d of %d)", g.Name, g.Min, len(g.Approvers)))
		}
		return "approvals from each group: " + strings.Join(parts, ", ")
	}
	switch {
	case r.Policy == PolicyAll:
		return "every approver must approve"
	case r.Policy.Quorum() > 0:
		return fmt.Sprintf("%d of %d approvers must approve", r.Policy.Quorum(), approvers)
	}
	if approvers == 1 {
		return "the approver decides"
	}
	return "one approval from any approver approves"
}

// Identity is who casts a vote: the address a personal link was sent to, or a
// Slack user with the email of their Slack profile.
type Identity struct {
	ID    string // email address or Slack user ID
	Email string // the Slack profile's email address, when known
}

// Matches reports whether the identity is the approver a (ignoring case).
func (id Identity) Matches(a string) bool {
	a = strings.TrimSpace(a)
	if a == "" {
		return false
	}
	return strings.EqualFold(strings.TrimSpace(id.ID), a) || (id.Email != "" && strings.EqualFold(strings.TrimSpace(id.Email), a))
}

// identityOf is the identity behind a stored vote.
func (v Vote) identity() Identity { return Identity{ID: v.By, Email: v.Email} }

// sameVoter reports whether two identities are one person: they share their ID
// or an email address.
func sameVoter(a, b Identity) bool {
	return a.Matches(b.ID) || (b.Email != "" && a.Matches(b.Email))
}

// approverOf returns the approver entry that id is, or "".
func (r *Request) approverOf(id Identity) string {
	for _, a := range r.Approvers {
		if id.Matches(a) {
			return a
		}
	}
	return ""
}

// voteOf returns the vote the person id has cast, or nil.
func (r *Request) voteOf(id Identity) *Vote {
	for i := range r.Votes {
		if sameVoter(r.Votes[i].identity(), id) {
			return &r.Votes[i]
		}
	}
	return nil
}

// IsRequester reports whether id is the person who asked, ignoring case.
func (r *Request) IsRequester(id Identity) bool {
	return r.Requester != "" && r.Requester != DefaultRequester && id.Matches(r.Requester)
}

// mayApprove reports whether approver a may approve: not the requester, unless
// the rule allows self-approval.
func (r *Request) mayApprove(a string) bool {
	return r.Rule.AllowSelfApproval || r.Requester == "" || r.Requester == DefaultRequester || !strings.EqualFold(a, r.Requester)
}

// groupsOf are the names of the groups whose members include id.
func (r *Request) groupsOf(id Identity) []string {
	var names []string
	for _, g := range r.Rule.Groups {
		for _, m := range g.Approvers {
			if id.Matches(m) {
				names = append(names, g.Name)
				break
			}
		}
	}
	return names
}

// Progress is how far the votes are from an outcome.
type Progress struct {
	Approvals  int
	Rejections int
	// Needed is how many more approvals the rule needs (over all groups).
	Needed int
	// Required is how many approvals the rule needs in all.
	Required int
	Groups   []GroupProgress
	// Outcome is the status the votes lead to: pending, approved or rejected.
	Outcome Status
}

// GroupProgress is the progress of one group.
type GroupProgress struct {
	Name      string
	Approvals int
	Needed    int // the group's minimum
	Satisfied bool
}

// Tally applies the request's rule to its votes. It is a pure function of the
// rule, the approvers, the requester and the votes.
func (r *Request) Tally() Progress {
	var p Progress
	for _, v := range r.Votes {
		if v.Choice == Approve {
			p.Approvals++
		} else {
			p.Rejections++
		}
	}
	approved, possible := false, false
	if len(r.Rule.Groups) > 0 {
		approved, possible = true, true
		for _, g := range r.Rule.Groups {
			gp := GroupProgress{Name: g.Name, Needed: g.Min}
			open := 0 // members who may still approve
			for _, m := range g.Approvers {
				v := r.voteOf(Identity{ID: m})
				switch {
				case v != nil && v.Choice == Approve:
					gp.Approvals++
				case v == nil && r.mayApprove(m):
					open++
				}
			}
			gp.Satisfied = gp.Approvals >= g.Min
			approved = approved && gp.Satisfied
			possible = possible && gp.Approvals+open >= g.Min
			p.Needed += max(0, g.Min-gp.Approvals)
			p.Required += g.Min
			p.Groups = append(p.Groups, gp)
		}
	} else {
		need, open := r.quorum(), 0
		for _, a := range r.Approvers {
			if r.voteOf(Identity{ID: a}) == nil && r.mayApprove(a) {
				open++
			}
		}
		approved = p.Approvals >= need
		possible = p.Approvals+open >= need
		p.Needed = max(0, need-p.Approvals)
		p.Required = need
	}
	switch {
	case approved:
		p.Outcome = StatusApproved
	case p.Rejections > 0 && (r.Rule.RejectPolicy != RejectImpossible || !possible):
		p.Outcome = StatusRejected
	case !possible:
		p.Outcome = StatusRejected
	default:
		p.Outcome = StatusPending
	}
	return p
}

// quorum is how many approvals a request without groups needs.
func (r *Request) quorum() int {
	switch {
	case r.Rule.Policy == PolicyAll:
		n := 0
		for _, a := range r.Approvers {
			if r.mayApprove(a) {
				n++
			}
		}
		return max(n, 1)
	case r.Rule.Policy.Quorum() > 0:
		return r.Rule.Policy.Quorum()
	}
	return 1
}

// check refuses a rule that could never approve the request: 400 naming the
// field.
func (r *Request) checkRule() error {
	if len(r.Rule.Groups) > 0 {
		for _, g := range r.Rule.Groups {
			if g.Min > len(g.Approvers) {
				return Invalidf("groups", "group %q needs %d approvals but has %d members", g.Name, g.Min, len(g.Approvers))
			}
			may := 0
			for _, m := range g.Approvers {
				if r.mayApprove(m) {
					may++
				}
			}
			if may < g.Min {
				return Invalidf("groups", "group %q could never be satisfied: the requester may not approve their own request", g.Name)
			}
		}
		return nil
	}
	may := 0
	for _, a := range r.Approvers {
		if r.mayApprove(a) {
			may++
		}
	}
	switch {
	case may == 0:
		return Invalidf("approvers", "the requester is the only approver and may not approve their own request")
	case r.Rule.Policy == PolicyAll && may < len(r.Approvers):
		return Invalidf("policy", "policy \"all\" could never be met: the requester is an approver and may not approve their own request")
	case r.Rule.Policy.Quorum() > len(r.Approvers):
		return Invalidf("policy", "policy %q needs more approvals than there are approvers (%d)", r.Rule.Policy, len(r.Approvers))
	case r.Rule.Policy.Quorum() > may:
		return Invalidf("policy", "policy %q could never be met: only %d approvers may approve (the requester may not approve their own request)", r.Rule.Policy, may)
	}
	return nil
}

// QuickTokens are the hashes of the tokens whose holder's next vote alone
// closes the request (see QuickVoter): reject those whose rejection closes
// it, approve those whose approval does, under the request's rule and the
// votes recorded so far. A holder who has voted or delegated their vote away
// is in neither; the requester is not in approve unless the rule allows
// self-approval. Both are empty unless the request is pending. Stores that
// implement QuickVoter keep them with the request, computed anew by every
// write.
func (r *Request) QuickTokens() (reject, approve []string) {
	if r.Status != StatusPending {
		return nil, nil
	}
	for _, rc := range r.Recipients {
		id := rc.Identity()
		if r.canVote(id) != nil {
			continue // voted, or delegated their vote away
		}
		hashes := []string{rc.TokenHash}
		if rc.PrevHash != "" {
			hashes = append(hashes, rc.PrevHash) // the page before an extension
		}
		if r.closedBy(id, Reject) {
			reject = append(reject, hashes...)
		}
		if (r.Rule.AllowSelfApproval || !r.IsRequester(id)) && r.closedBy(id, Approve) {
			approve = append(approve, hashes...)
		}
	}
	return reject, approve
}

// closedBy reports whether a vote c by id, added to the votes recorded,
// closes the request with c's status, as the general vote path would count it.
func (r *Request) closedBy(id Identity, c Choice) bool {
	if legacyVoter(id) {
		return true // a first-version link decides alone
	}
	next := *r
	next.Votes = append(slices.Clip(r.Votes), Vote{By: id.ID, Email: id.Email, Choice: c, Groups: r.groupsOf(id)})
	return next.Tally().Outcome == c.Status()
}

// NameVoter fills in who cast v with the token whose hash is tokenHash: the
// recipient holding it, and the groups of the rule that person counts in.
// It reports false when no recipient holds the token.
func (r *Request) NameVoter(v *Vote, tokenHash string) bool {
	rc, ok := r.RecipientByHash(tokenHash)
	if !ok || tokenHash == "" {
		return false
	}
	id := rc.Identity()
	v.By, v.Email, v.Channel, v.Groups = id.ID, id.Email, rc.Channel, r.groupsOf(id)
	return true
}

// CloseByQuickVote applies a vote cast with the token whose hash is
// tokenHash that closes the request under QuickVoter's conditions, and appends
// effects (each replacing an earlier one of its kind and target). It reports
// false, changing nothing, when the conditions do not hold at v.At. It is the
// in-memory reference of QuickVoter.QuickVote.
func (r *Request) CloseByQuickVote(tokenHash string, v Vote, effects []Effect) bool {
	reject, approve := r.QuickTokens()
	may := reject
	if v.Choice == Approve {
		may = approve
	}
	if !slices.Contains(may, tokenHash) || r.ExpiredAt(v.At) || !r.NameVoter(&v, tokenHash) {
		return false
	}
	r.Votes = append(r.Votes, v)
	r.Status = v.Choice.Status()
	r.Decision = &Decision{Choice: v.Choice, By: v.By, Channel: v.Channel, Comment: v.Comment, At: v.At}
	r.Effects = append(r.Effects, effects...)
	r.SupersedeEffects()
	return true
}
