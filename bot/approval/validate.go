package approval

import (
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on what a request may hold.
const (
	MinTimeout       = time.Minute
	MaxTimeout       = 30 * 24 * time.Hour
	MaxTitle         = 200
	MaxDetails       = 8000
	MaxApprovers     = 20
	MaxLinks         = 10
	MaxComment       = 2000
	MaxGroups        = 10
	DefaultRequester = "unknown"
)

// NewRequest is the input that asks for a decision.
type NewRequest struct {
	Title        string
	Details      string
	Requester    string
	Approvers    []string // email addresses, or Slack user IDs (U…/W…)
	Links        []Link
	Timeout      time.Duration
	Policy       string       // any (default), all or quorum:N
	Groups       []GroupInput // instead of Approvers and Policy
	RejectPolicy string       // any (default) or impossible
	// AllowSelfApproval lets the requester approve their own request.
	AllowSelfApproval bool
	SlackChannel      string // Slack channel ID or name; empty for the service default
	WebhookURL        string // embedded mode: where the outcome is POSTed
	TaskToken         string // AWS form: the Step Functions task token

	// Timing and hand-offs (see validate_lifecycle.go).

	// OnTimeout is expire (default), reject or approve.
	OnTimeout string
	// Reminders remind the approvers who have not voted.
	Reminders Reminders
	// Escalation, when set, adds approvers if the request is still pending
	// after Escalation.After.
	Escalation *EscalationInput
	// NoDelegation forbids approvers to hand their vote on.
	NoDelegation bool
	// TaskDeadline is when the workflow's task stops waiting, when known.
	TaskDeadline time.Time
}

// GroupInput is one group of a new request: at least Min of Approvers must
// approve.
type GroupInput struct {
	Name      string
	Approvers []string
	Min       int
}

var (
	groupName      = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)
	slackUserID    = regexp.MustCompile(`^[UW][A-Z0-9]{5,20}$`)
	slackChannelRe = regexp.MustCompile(`^(#?[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{5,20})$`)
)

// IsSlackUserID reports whether s looks like a Slack user ID.
func IsSlackUserID(s string) bool { return slackUserID.MatchString(s) }

// validate checks every field and returns the normalised request (without ID,
// times or recipients). Its errors are *ValidationError.
func (in NewRequest) validate() (*Request, error) {
	r := &Request{
		Title:        strings.TrimSpace(in.Title),
		Details:      strings.TrimSpace(in.Details),
		Requester:    strings.TrimSpace(in.Requester),
		SlackChannel: strings.TrimSpace(in.SlackChannel),
		WebhookURL:   strings.TrimSpace(in.WebhookURL),
		TaskToken:    in.TaskToken,
		Status:       StatusPending,
	}
	switch {
	case r.Title == "":
		return nil, Invalidf("title", "title is required")
	case utf8.RuneCountInString(r.Title) > MaxTitle:
		return nil, Invalidf("title", "title is longer than %d characters", MaxTitle)
	case utf8.RuneCountInString(r.Details) > MaxDetails:
		return nil, Invalidf("details", "details are longer than %d characters", MaxDetails)
	case utf8.RuneCountInString(r.Requester) > MaxTitle:
		return nil, Invalidf("requester", "requester is longer than %d characters", MaxTitle)
	case in.Timeout < MinTimeout || in.Timeout > MaxTimeout:
		return nil, Invalidf("timeout", "timeout must be between 1 minute and 30 days, got %s", in.Timeout)
	}
	if err := checkTexts(r, in.Links); err != nil {
		return nil, err
	}
	if r.Requester == "" {
		r.Requester = DefaultRequester
	}
	if err := in.validateApprovers(r); err != nil {
		return nil, err
	}
	if len(in.Links) > MaxLinks {
		return nil, Invalidf("links", "at most %d links are allowed", MaxLinks)
	}
	for _, l := range in.Links {
		if err := checkURL("links", l.URL); err != nil {
			return nil, err
		}
		if !utf8.ValidString(l.Label) || utf8.RuneCountInString(l.Label) > MaxTitle {
			return nil, Invalidf("links", "link label must be valid UTF-8 of at most %d characters", MaxTitle)
		}
		r.Links = append(r.Links, Link{Label: strings.TrimSpace(l.Label), URL: strings.TrimSpace(l.URL)})
	}
	if r.WebhookURL != "" {
		if err := checkURL("webhookURL", r.WebhookURL); err != nil {
			return nil, err
		}
	}
	if r.SlackChannel != "" && !slackChannelRe.MatchString(r.SlackChannel) {
		return nil, Invalidf("slackChannel", "slackChannel %q is not a Slack channel ID or name", r.SlackChannel)
	}
	rp, err := ParseRejectPolicy(in.RejectPolicy)
	if err != nil {
		return nil, err
	}
	r.Rule.RejectPolicy = rp
	r.Rule.AllowSelfApproval = in.AllowSelfApproval
	if err := r.checkRule(); err != nil {
		return nil, err
	}
	if err := in.validateLifecycle(r); err != nil {
		return nil, err
	}
	return r, nil
}

// validateApprovers sets r.Approvers and r.Rule's policy or groups.
func (in NewRequest) validateApprovers(r *Request) error {
	if len(in.Groups) > 0 {
		if len(in.Approvers) > 0 || strings.TrimSpace(in.Policy) != "" {
			return Invalidf("groups", "give either groups, or approvers and a policy, not both")
		}
		if len(in.Groups) > MaxGroups {
			return Invalidf("groups", "at most %d groups are allowed", MaxGroups)
		}
		seenGroup, seen := map[string]bool{}, map[string]bool{}
		for _, g := range in.Groups {
			name := strings.TrimSpace(g.Name)
			if !groupName.MatchString(name) {
				return Invalidf("groups", "group name %q must be 1 to 32 characters of a-z, 0-9 and -", g.Name)
			}
			if seenGroup[name] {
				return Invalidf("groups", "group %q is given twice", name)
			}
			seenGroup[name] = true
			members, err := normalizeApprovers("groups", g.Approvers)
			if err != nil {
				return err
			}
			min := g.Min
			if min == 0 {
				min = 1
			}
			if min < 1 || min > len(members) {
				return Invalidf("groups", "group %q: min must be between 1 and its %d members", name, len(members))
			}
			r.Rule.Groups = append(r.Rule.Groups, Group{Name: name, Approvers: members, Min: min})
			for _, m := range members {
				if !seen[m] {
					seen[m] = true
					r.Approvers = append(r.Approvers, m)
				}
			}
		}
		if len(r.Approvers) > MaxApprovers {
			return Invalidf("groups", "at most %d approvers are allowed in all groups", MaxApprovers)
		}
		return nil
	}
	approvers, err := normalizeApprovers("approvers", in.Approvers)
	if err != nil {
		return err
	}
	r.Approvers = approvers
	p, err := ParsePolicy(in.Policy)
	if err != nil {
		return err
	}
	r.Rule.Policy = p
	return nil
}

// normalizeApprovers checks a list of approvers (email addresses, lower-cased,
// or Slack user IDs) and removes repeats.
func normalizeApprovers(field string, in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, Invalidf(field, "at least one approver is required")
	}
	if len(in) > MaxApprovers {
		return nil, Invalidf(field, "at most %d approvers are allowed", MaxApprovers)
	}
	var out []string
	seen := map[string]bool{}
	for _, a := range in {
		a = strings.TrimSpace(a)
		if err := checkAddress(field, a); err != nil {
			return nil, err
		}
		if !IsSlackUserID(a) {
			addr, err := mail.ParseAddress(a)
			if err != nil || addr.Address != a || !strings.Contains(a, "@") {
				return nil, Invalidf(field, "approver %q is not a valid email address (or Slack user ID)", a)
			}
			a = strings.ToLower(a)
		}
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out, nil
}

func checkURL(field, raw string) error {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return Invalidf(field, "%s: %q is not an absolute http(s) URL", field, raw)
	}
	if len(raw) > 2000 {
		return Invalidf(field, "%s: URL is longer than 2000 characters", field)
	}
	return nil
}

var newlines = strings.NewReplacer("\r\n", "\n", "\r", "\n")

// NormalizeNewlines turns every line break into "\n". Browsers submit a
// textarea's line breaks as CRLF; a comment is stored, counted and delivered
// with "\n" only.
func NormalizeNewlines(s string) string { return newlines.Replace(s) }
