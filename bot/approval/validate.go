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
	Policy       string
	SlackChannel string // Slack channel ID or name; empty for the service default
	WebhookURL   string // embedded mode: where the outcome is POSTed
	TaskToken    string // AWS form: the Step Functions task token
}

var (
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
	if !utf8.ValidString(r.Title + r.Details + r.Requester) {
		return nil, Invalidf("title", "text must be valid UTF-8")
	}
	if r.Requester == "" {
		r.Requester = DefaultRequester
	}
	if len(in.Approvers) == 0 {
		return nil, Invalidf("approvers", "at least one approver is required")
	}
	if len(in.Approvers) > MaxApprovers {
		return nil, Invalidf("approvers", "at most %d approvers are allowed", MaxApprovers)
	}
	seen := map[string]bool{}
	for _, a := range in.Approvers {
		a = strings.TrimSpace(a)
		if !IsSlackUserID(a) {
			addr, err := mail.ParseAddress(a)
			if err != nil || addr.Address != a || !strings.Contains(a, "@") {
				return nil, Invalidf("approvers", "approver %q is not a valid email address (or Slack user ID)", a)
			}
			a = strings.ToLower(a)
		}
		if !seen[a] {
			seen[a] = true
			r.Approvers = append(r.Approvers, a)
		}
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
	p, err := ParsePolicy(in.Policy)
	if err != nil {
		return nil, err
	}
	r.Policy = p
	return r, nil
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
