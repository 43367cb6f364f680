package slackapp

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"approvalbot/bot/approval"
)

// Profile cache: users.info answers are kept briefly, so that a burst of
// clicks and commands by one person costs one call, and a changed profile
// email counts within minutes.
const (
	profileTTL  = 5 * time.Minute
	maxProfiles = 1000
)

// profiles caches the email address of Slack users' profiles.
type profiles struct {
	mu sync.Mutex
	m  map[string]profile
}

type profile struct {
	email string
	at    time.Time
}

func (p *profiles) get(user string, now time.Time) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.m[user]
	if !ok || now.Sub(e.at) >= profileTTL || now.Before(e.at) {
		return "", false
	}
	return e.email, true
}

func (p *profiles) put(user, email string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]profile{}
	}
	if len(p.m) >= maxProfiles {
		for k, e := range p.m {
			if now.Sub(e.at) >= profileTTL {
				delete(p.m, k)
			}
		}
		if len(p.m) >= maxProfiles {
			clear(p.m)
		}
	}
	p.m[user] = profile{email: email, at: now}
}

// identity is who Slack vouches the user is: their user ID and, when Slack
// has one, their profile's email address (users.info, bounded by timeout,
// cached briefly). known is false when Slack could not be asked (a timeout, a
// network failure): the identity is then the user ID only, and a refusal as
// "not an approver" may be wrong.
func (a *App) identity(ctx context.Context, user string, timeout time.Duration) (id approval.Identity, known bool) {
	id = approval.Identity{ID: user}
	if user == "" {
		return id, true
	}
	now := a.now()
	if email, ok := a.profiles.get(user, now); ok {
		id.Email = email
		return id, true
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u, err := call(ctx, func(ctx context.Context) (*slack.User, error) { return a.api.GetUserInfoContext(ctx, user) })
	if err != nil {
		var se slack.SlackErrorResponse
		if errors.As(err, &se) {
			// Slack answered: it knows no email for this user (user_not_found,
			// a bot, an external account).
			a.log.Info("slack: users.info refused; the user is known by ID only", "user", user, "reason", se.Err)
			a.profiles.put(user, "", now)
			return id, true
		}
		if !errors.Is(err, context.Canceled) { // not when the caller no longer needs it
			a.log.Warn("slack: users.info failed; the user is known by ID only", "user", user, "err", err)
		}
		return id, false
	}
	id.Email = strings.ToLower(strings.TrimSpace(u.Profile.Email))
	a.profiles.put(user, id.Email, now)
	return id, true
}

// canStillVote reports whether the person id is an approver of r who has not
// voted on it yet.
func canStillVote(r *approval.Request, id approval.Identity) bool {
	if r.Status != approval.StatusPending || !isApprover(r, id) {
		return false
	}
	return r.VoteOf(id) == nil
}

func isApprover(r *approval.Request, id approval.Identity) bool {
	return (id.ID != "" && r.IsApprover(id.ID)) || (id.Email != "" && r.IsApprover(id.Email))
}

// approverIdentity is id as the approver entry of r it matches: the Slack user
// itself when r names their user ID, otherwise their profile email when r
// names that. A personal link is minted for that entry, so that the vote cast
// through it counts for the approver r names.
func approverIdentity(r *approval.Request, id approval.Identity) approval.Identity {
	if r.IsApprover(id.ID) || id.Email == "" || !r.IsApprover(id.Email) {
		return id
	}
	return approval.Identity{ID: id.Email}
}
