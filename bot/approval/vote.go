package approval

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// DecideInput is one confirmed press of Approve or Reject on a one-time page.
type DecideInput struct {
	Token   string // the raw one-time token
	Choice  Choice
	Comment string
}

// maxVoteAttempts bounds how often a vote is computed again after another
// change of the request was written first.
const maxVoteAttempts = 64

// Decide records the vote of the token's holder. When the vote meets the rule
// it closes the request in the same write, and the outcome is handed on before
// Decide returns. Errors: ErrNotFound (unknown token), ErrAlreadyDecided and
// ErrExpired (with the request, so the caller can say by whom and when),
// ErrAlreadyVoted (with the request), ErrSelfApproval, ErrWorkflowGone (the
// decision was taken but nothing waited for it any more), ErrInvalid.
func (s *Service) Decide(ctx context.Context, in DecideInput) (*Request, error) {
	if in.Token == "" {
		return nil, Invalidf("token", "the link has no token")
	}
	hash := HashToken(in.Token)
	id, err := s.tokenRequest(ctx, in.Token)
	if err != nil {
		return nil, fmt.Errorf("decide: %w", err)
	}
	c, comment, err := checkVote(in.Choice, in.Comment)
	if err != nil {
		return nil, err
	}
	var read *Request
	if qv, ok := s.Store.(QuickVoter); ok && TokenRequestID(in.Token) != "" {
		r, done, err := s.quickVote(ctx, qv, id, hash, c, comment)
		if done || err != nil {
			return r, err
		}
		read = r // refused by the quick path: the request as it stands (nil if not tried)
	}
	return s.vote(ctx, id, read, c, comment, func(r *Request) (Identity, Channel, error) {
		rc, ok := r.RecipientByHash(hash)
		if !ok {
			return Identity{}, "", ErrNotFound
		}
		return recipientIdentity(rc), rc.Channel, nil
	})
}

// recipientIdentity is who votes with a recipient's token. A channel-wide
// link of the first version (its address a channel, neither a Slack user nor
// an email address) votes as the channel.
func recipientIdentity(rc Recipient) Identity { return rc.Identity() }

// Identity is who votes with the recipient's token: the approver, with the
// Slack profile email they had when the link was minted. A channel-wide link
// of the first version votes as the channel.
func (rc Recipient) Identity() Identity {
	if rc.Channel == ChannelSlack && !IsSlackUserID(rc.Address) && !strings.Contains(rc.Address, "@") {
		return Identity{ID: "Slack channel " + rc.Address}
	}
	return Identity{ID: rc.Address, Email: rc.Email}
}

// legacyVoter reports whether id is the channel-wide voter of a first-version
// link, who may vote without being an approver.
func legacyVoter(id Identity) bool { return strings.HasPrefix(id.ID, "Slack channel ") }

// tokenRequest returns the ID of the request a token belongs to.
func (s *Service) tokenRequest(ctx context.Context, token string) (string, error) {
	if id := TokenRequestID(token); id != "" {
		return id, nil
	}
	id, err := s.Store.LegacyToken(ctx, HashToken(token))
	if err != nil {
		return "", fmt.Errorf("find token: %w", err)
	}
	return id, nil
}

// DecideInChat records the vote of a chat user who pressed a button: voter is
// who Slack says pressed it. Errors as Decide, and ErrNotApprover.
func (s *Service) DecideInChat(ctx context.Context, id string, c Choice, comment string, voter Identity) (*Request, error) {
	c, comment, err := checkVote(c, comment)
	if err != nil {
		return nil, err
	}
	return s.vote(ctx, id, nil, c, comment, func(r *Request) (Identity, Channel, error) {
		if r.approverOf(voter) == "" && !r.delegatedAway(voter) { // a delegator is told ErrDelegated
			return Identity{}, "", ErrNotApprover
		}
		return voter, ChannelSlack, nil
	})
}

// Lookup returns the request behind a raw one-time token and whether its
// holder can still vote, without voting: nil, or ErrAlreadyDecided,
// ErrExpired, ErrAlreadyVoted (each with the request), ErrNotFound.
func (s *Service) Lookup(ctx context.Context, token string) (*Request, error) {
	id, err := s.tokenRequest(ctx, token)
	if err != nil {
		return nil, fmt.Errorf("lookup token: %w", err)
	}
	r, err := s.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("lookup token: %w", err)
	}
	rc, ok := r.RecipientByHash(HashToken(token))
	if !ok {
		return nil, fmt.Errorf("lookup token: %w", ErrNotFound)
	}
	return r, r.canVote(recipientIdentity(rc))
}

// openErr says why r can no longer change (ErrAlreadyDecided, ErrExpired),
// or is nil while it is pending.
func (r *Request) openErr() error {
	switch {
	case r.Status.Decided():
		return ErrAlreadyDecided
	case r.Status != StatusPending:
		return ErrExpired
	}
	return nil
}

// canVote says why the person id cannot vote on r now, or nil.
func (r *Request) canVote(id Identity) error {
	if err := r.openErr(); err != nil {
		return err
	}
	switch {
	case r.voteOf(id) != nil:
		return ErrAlreadyVoted
	case r.delegatedAway(id):
		return ErrDelegated
	}
	return nil
}

// VoteOf returns the vote the person id has cast on r, or nil.
func (r *Request) VoteOf(id Identity) *Vote { return r.voteOf(id) }

// vote records one vote: one conditional write of the request over the
// version it was read at, which also closes the request when the vote meets
// the rule, and records the effects that follow. who identifies the voter on
// the request as read; read, when set, is the request as just read.
func (s *Service) vote(ctx context.Context, id string, read *Request, c Choice, comment string, who func(*Request) (Identity, Channel, error)) (*Request, error) {
	for range maxVoteAttempts {
		r := read
		read = nil
		if r == nil {
			var err error
			if r, err = s.Store.GetRequest(ctx, id); err != nil {
				return nil, fmt.Errorf("vote: %w", err) // the store names the request
			}
		}
		now := s.now()
		if r.Status == StatusPending && r.ExpiredAt(now) {
			r = s.advance(ctx, r)
		}
		voter, ch, err := who(r)
		if err != nil {
			return r, fmt.Errorf("vote on %s: %w", id, err)
		}
		if err := r.canVote(voter); err != nil {
			if r.Status != StatusPending && !r.Delivered() {
				r = s.advance(ctx, r) // an outcome whose delivery is due
			}
			return r, err
		}
		if c == Approve && !r.Rule.AllowSelfApproval && r.IsRequester(voter) {
			return r, ErrSelfApproval
		}
		next := r.Clone()
		next.Votes = append(next.Votes, Vote{
			By: voter.ID, Email: voter.Email, Channel: ch, Choice: c, Comment: comment, At: now,
			Groups: r.groupsOf(voter),
		})
		lease := newLease()
		p := next.Tally()
		if legacyVoter(voter) {
			p.Outcome = c.Status() // a first-version link decides alone
		}
		if p.Outcome != StatusPending {
			next.Status = p.Outcome
			next.Decision = &Decision{Choice: c, By: voter.ID, Channel: ch, Comment: comment, At: now}
		}
		s.wantAfterChange(next, lease, now)
		if err := s.updateRequest(ctx, next); err != nil {
			if errors.Is(err, ErrConflict) {
				continue // changed since it was read: count again
			}
			return nil, fmt.Errorf("vote on %s: %w", id, err)
		}
		s.log().Info("vote recorded", "request_id", id, "choice", c, "channel", ch, "status", next.Status)
		s.signal(id)
		next = s.runEffects(ctx, next, lease, false)
		if next.Reason == ReasonWorkflowGone && next.Decision != nil && next.Status == StatusExpired {
			return next, ErrWorkflowGone
		}
		return next, nil
	}
	return nil, fmt.Errorf("vote on %s: too many concurrent changes: %w", id, ErrConflict)
}

// checkVote checks a choice and normalises a comment.
func checkVote(c Choice, comment string) (Choice, string, error) {
	if c != Approve && c != Reject {
		return "", "", Invalidf("decision", "decision must be %q or %q", Approve, Reject)
	}
	comment = strings.TrimSpace(NormalizeNewlines(comment))
	if utf8.RuneCountInString(comment) > MaxComment {
		return "", "", Invalidf("comment", "comment is longer than %d characters", MaxComment)
	}
	if err := CheckText("comment", comment, true); err != nil {
		return "", "", err
	}
	return c, comment, nil
}

// quickVote tries the store's one-write vote. done reports that the vote was
// recorded (r is the request as written) or failed (err); otherwise the
// request's rule or state calls for the general path, and r is the request as
// stored, for it to start from (nil when the quick path was not tried).
func (s *Service) quickVote(ctx context.Context, qv QuickVoter, id, hash string, c Choice, comment string) (r *Request, done bool, err error) {
	now := s.now()
	lease := newLease()
	var effects []Effect
	for _, k := range s.closeEffects() {
		effects = append(effects, Effect{Kind: k, State: EffectPending, Attempts: 1, Lease: lease, LeaseUntil: now.Add(EffectLease)})
	}
	if len(effects) == 0 {
		// The quick write does not seal the audit trail; the write that
		// records its effects does. With none to run, the general path's
		// write seals it.
		return nil, false, nil
	}
	r, err = qv.QuickVote(ctx, id, hash, Vote{Choice: c, Comment: comment, At: now}, effects)
	switch {
	case err == nil:
		s.log().Info("vote recorded", "request_id", id, "choice", c, "status", r.Status, "quick", true)
		s.signal(id)
		r = s.runEffects(ctx, r, lease, false)
		if r.Reason == ReasonWorkflowGone && r.Decision != nil && r.Status == StatusExpired {
			return r, true, ErrWorkflowGone
		}
		return r, true, nil
	case errors.Is(err, ErrNotFound):
		return nil, true, fmt.Errorf("vote on %s: %w", id, err)
	case errors.Is(err, ErrConflict) && r != nil:
		return r, false, nil
	}
	return nil, true, fmt.Errorf("vote on %s: %w", id, err)
}

// closeEffects are the effects a close may need, for a writer that does not
// know the request: each is a no-op where it does not apply.
func (s *Service) closeEffects() []EffectKind {
	var kinds []EffectKind
	if _, retire := s.Pages.(RetiringPages); !retire {
		kinds = append(kinds, EffectPages)
	}
	if s.Chat != nil {
		kinds = append(kinds, EffectUpdate)
	}
	if s.Workflow != nil {
		kinds = append(kinds, EffectDeliver)
	}
	return kinds
}

// wantAfterChange records the effects of a change just made to r (a vote, a
// close), leased to lease: delete the pages that must go, update the chat
// messages, and, once closed, deliver the outcome.
func (s *Service) wantAfterChange(r *Request, lease string, now time.Time) {
	// A host of retiring pages stops serving a closed request's pages with
	// the write that closes it; pages that go while it stays pending (a
	// voter's, a delegator's) are deleted.
	if _, retire := s.Pages.(RetiringPages); !(retire && r.Status != StatusPending) && len(r.deadPageKeys()) > 0 {
		r.want(EffectPages, "", lease, now)
	}
	if s.Chat != nil && r.hasChat() {
		r.want(EffectUpdate, "", lease, now)
	}
	if r.Status != StatusPending && s.Workflow != nil && (r.TaskToken != "" || r.WebhookURL != "") {
		r.want(EffectDeliver, "", lease, now)
	}
}

// hasChat reports whether the request has, or will have, chat messages.
func (r *Request) hasChat() bool {
	return r.SlackChannel != "" || len(r.Messages()) > 0 || r.hasEffect(EffectDM)
}

func (r *Request) hasEffect(k EffectKind) bool {
	for _, e := range r.Effects {
		if e.Kind == k {
			return true
		}
	}
	return false
}

// PersonalLink mints a personal one-time link on request id for voter (a Slack
// user who asked for one), and returns its address. Errors: ErrNotApprover,
// ErrAlreadyVoted, ErrAlreadyDecided, ErrExpired (with the request),
// ErrNotFound.
func (s *Service) PersonalLink(ctx context.Context, id string, voter Identity) (*Request, string, error) {
	for range maxVoteAttempts {
		r, err := s.Get(ctx, id)
		if err != nil {
			return nil, "", fmt.Errorf("personal link: %w", err)
		}
		a := r.approverOf(voter)
		if a == "" {
			return r, "", ErrNotApprover
		}
		if err := r.canVote(voter); err != nil {
			return r, "", err
		}
		next := r.Clone()
		rc, html, err := s.mint(next, a, ChannelSlack, s.decideURL(ctx)) // the approver they are: their vote is theirs
		rc.Email = voter.Email
		if err != nil {
			return nil, "", fmt.Errorf("personal link: %w", err)
		}
		next.Recipients = append(next.Recipients, rc)
		if err := s.Pages.Put(ctx, rc.PageKey, html); err != nil {
			return nil, "", fmt.Errorf("personal link: %w", err)
		}
		if err := s.updateRequest(ctx, next); err != nil {
			s.deletePages(context.WithoutCancel(ctx), []string{rc.PageKey})
			if errors.Is(err, ErrConflict) {
				continue
			}
			return nil, "", fmt.Errorf("personal link: %w", err)
		}
		return next, s.Pages.URL(rc.PageKey), nil
	}
	return nil, "", fmt.Errorf("personal link on %s: too many concurrent changes: %w", id, ErrConflict)
}

// MaxCancelReason is the longest reason a cancellation may give.
const MaxCancelReason = 500

// Cancel withdraws pending request id on behalf of by, with an optional
// reason: its status becomes canceled, its pages go, its chat messages say who
// canceled it and why, and the workflow is told (Step Functions: a failure
// "Canceled"). Errors: ErrNotFound, ErrAlreadyDecided and ErrExpired (with the
// request), ErrInvalid.
func (s *Service) Cancel(ctx context.Context, id, by, reason string) (*Request, error) {
	by, reason = strings.TrimSpace(by), strings.TrimSpace(NormalizeNewlines(reason))
	switch {
	case by == "":
		return nil, Invalidf("by", "who cancels must be given")
	case !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > MaxCancelReason:
		return nil, Invalidf("reason", "reason must be valid UTF-8 of at most %d characters", MaxCancelReason)
	}
	for range maxVoteAttempts {
		r, err := s.Get(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("cancel: %w", err)
		}
		if err := r.openErr(); err != nil {
			return r, err
		}
		now := s.now()
		next := r.Clone()
		next.Status, next.Reason = StatusCanceled, ReasonCanceled
		next.Canceled = &Cancellation{By: by, Reason: reason, At: now}
		lease := newLease()
		s.wantAfterChange(next, lease, now)
		s.wantCancelNotice(next, lease, now)
		if err := s.updateRequest(ctx, next); err != nil {
			if errors.Is(err, ErrConflict) {
				continue
			}
			return nil, fmt.Errorf("cancel %s: %w", id, err)
		}
		s.log().Info("request canceled", "request_id", id)
		s.signal(id)
		return s.runEffects(ctx, next, lease, false), nil
	}
	return nil, fmt.Errorf("cancel %s: too many concurrent changes: %w", id, ErrConflict)
}
