package dynamo

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/dynamo/schema"
)

// The table's keys and the attributes its indexes are defined on, as
// package schema writes them (the CDK app creates the table from there).
// Everything else about an item's shape stays private to this package.
const (
	// KeyAttribute is the table's partition key (S).
	KeyAttribute = schema.KeyAttribute
	// TTLAttribute holds, in epoch seconds (N), when DynamoDB may delete the
	// item.
	TTLAttribute = schema.TTLAttribute
	// PendingIndex is the sparse index of pending requests: partition key
	// PendingKeyAttribute, sort key CreatedAtAttribute.
	PendingIndex = schema.PendingIndex
	// UndeliveredIndex is the sparse index of closed requests and of the
	// audit journal: partition key UndeliveredKeyAttribute, sort key
	// CreatedAtAttribute. The first version kept there, under "UNDELIVERED",
	// its closed requests whose outcome had not reached the workflow
	// (ListDue reads that partition until those items are upgraded).
	UndeliveredIndex = schema.UndeliveredIndex
	// DueIndex is the sparse index of requests that something is due on:
	// partition key DueKeyAttribute, sort key DueAtAttribute.
	DueIndex = schema.DueIndex
	// PendingKeyAttribute is present only on pending requests:
	// "PENDING#<shard>" (the first version wrote "PENDING").
	PendingKeyAttribute = schema.PendingKeyAttribute
	// UndeliveredKeyAttribute is "CLOSED#<shard>" on a closed request,
	// "CHANGED#<shard>" on an item of the audit journal (see AuditChanged),
	// and was "UNDELIVERED" on the first version's closed requests whose
	// outcome was not delivered.
	UndeliveredKeyAttribute = schema.UndeliveredKeyAttribute
	// DueKeyAttribute is present, as "DUE#<shard>", only on requests whose
	// DueAt is set.
	DueKeyAttribute = schema.DueKeyAttribute
	// DueAtAttribute is a request's DueAt (in the form of
	// CreatedAtAttribute), present with DueKeyAttribute.
	DueAtAttribute = schema.DueAtAttribute
	// CreatedAtAttribute is a request's creation time, fixed-width UTC RFC
	// 3339 with nine fraction digits (2031-05-06T07:08:09.123000000Z), so
	// that byte order is time order. Every stored time has this form.
	CreatedAtAttribute = schema.CreatedAtAttribute
	// VersionAttribute is a request's Version (N). Items of the first
	// version have none and read as version 0.
	VersionAttribute = "version"
)

// Shards is how many partition key values each sharded index spreads its
// items over, so that no single key value takes every write. A request's shard
// is a hash of its ID modulo Shards. Changing it moves requests between
// shards: the lists only query shards 0 to Shards-1.
const Shards = 8

const (
	requestPrefix = "REQ#"
	tokenPrefix   = "TOK#"
	pendingPrefix = "PENDING#"
	duePrefix     = "DUE#"
	closedPrefix  = "CLOSED#"
	// changedPrefix is the partition of the audit journal's items, and
	// journalPrefix their key: "AUDJ#<request id>#<seq of its head>".
	changedPrefix = "CHANGED#"
	journalPrefix = "AUDJ#"
	// checkpointPrefix keys the checkpoints ("AUDIT#CKPT#<seq>"), and
	// lastCheckpoint the item that points at the newest.
	checkpointPrefix = "AUDIT#CKPT#"
	lastCheckpoint   = "AUDIT#LAST"
	// The first version's constant index keys.
	legacyPending     = "PENDING"
	legacyUndelivered = "UNDELIVERED"
)

// timeLayout stores instants as fixed-width UTC RFC 3339 strings, so that their
// byte order is their time order: the indexes sort by them and the lists
// compare them.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("attribute %s: %w", field, err)
	}
	return t, nil
}

func requestKey(id string) string                 { return requestPrefix + id }
func tokenKey(hash string) string                 { return tokenPrefix + hash }
func ttlOf(t time.Time, keep time.Duration) int64 { return t.Add(keep).Unix() }

// shard is the shard of request id: FNV-1a of the ID modulo Shards.
func shard(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % Shards)
}

func pendingShard(n int) string { return pendingPrefix + strconv.Itoa(n) }
func dueShard(n int) string     { return duePrefix + strconv.Itoa(n) }
func closedShard(n int) string  { return closedPrefix + strconv.Itoa(n) }
func changedShard(n int) string { return changedPrefix + strconv.Itoa(n) }

// requestItem is the stored form of an approval.Request: one item holding
// everything about the request. The fields marked "first version" are only
// read, from items written before version 2; writing an item drops them.
type requestItem struct {
	PK         string     `dynamodbav:"pk"`
	Kind       string     `dynamodbav:"kind"`
	ID         string     `dynamodbav:"id"`
	Version    *int64     `dynamodbav:"version,omitempty"` // nil: first version
	TaskToken  string     `dynamodbav:"taskToken,omitempty"`
	WebhookURL string     `dynamodbav:"webhookURL,omitempty"`
	Title      string     `dynamodbav:"title"`
	Details    string     `dynamodbav:"details,omitempty"`
	Links      []linkItem `dynamodbav:"links,omitempty"`
	Requester  string     `dynamodbav:"requester"`
	Approvers  []string   `dynamodbav:"approvers,omitempty"`
	Rule       *ruleItem  `dynamodbav:"rule,omitempty"`
	// Policy is the first version's policy (always "any" in practice).
	Policy     string          `dynamodbav:"policy,omitempty"`
	Recipients []recipientItem `dynamodbav:"recipients,omitempty"`

	SlackChannel   string     `dynamodbav:"slackChannel,omitempty"`
	ChatChannel    string     `dynamodbav:"chatChannel,omitempty"`
	ChatTS         string     `dynamodbav:"chatTS,omitempty"`
	DirectMessages []chatItem `dynamodbav:"directMessages,omitempty"`

	Status    string `dynamodbav:"status"`
	CreatedAt string `dynamodbav:"createdAt"`
	ExpiresAt string `dynamodbav:"expiresAt"`
	Reason    string `dynamodbav:"reason,omitempty"`
	// Canceled* say who withdrew the request, why and when.
	CanceledBy   string `dynamodbav:"canceledBy,omitempty"`
	CancelReason string `dynamodbav:"cancelReason,omitempty"`
	CanceledAt   string `dynamodbav:"canceledAt,omitempty"`

	DecisionChoice  string `dynamodbav:"decisionChoice,omitempty"`
	DecidedBy       string `dynamodbav:"decidedBy,omitempty"`
	DecisionChannel string `dynamodbav:"decisionChannel,omitempty"`
	DecisionComment string `dynamodbav:"decisionComment,omitempty"`
	DecidedAt       string `dynamodbav:"decidedAt,omitempty"`
	// DecidedByToken names the deciding vote's voter by the hash of their
	// token, where a quick vote could not name them (see QuickVote).
	DecidedByToken string `dynamodbav:"decidedByToken,omitempty"`

	// QuickReject and QuickApprove are the token hashes whose next vote alone
	// closes the request (approval.Request.QuickTokens), the condition of a
	// quick vote.
	QuickReject  []string `dynamodbav:"quickReject,stringset,omitempty"`
	QuickApprove []string `dynamodbav:"quickApprove,stringset,omitempty"`

	Votes   []voteItem   `dynamodbav:"votes,omitempty"`
	Effects []effectItem `dynamodbav:"effects,omitempty"`
	// Audit is the request's audit trail, each entry as exported (one line
	// of JSON).
	Audit []string `dynamodbav:"audit,omitempty"`

	// Delivered and DeliveryLeaseUntil are the first version's delivery
	// state: whether the outcome reached the workflow, and the end of the
	// lease of the process sending it.
	Delivered          bool   `dynamodbav:"delivered,omitempty"`
	DeliveryLeaseUntil string `dynamodbav:"deliveryLeaseUntil,omitempty"`

	PendingPK     string `dynamodbav:"pendingPK,omitempty"`
	UndeliveredPK string `dynamodbav:"undeliveredPK,omitempty"` // CLOSED#<shard> while closed
	DueShard      string `dynamodbav:"dueShard,omitempty"`
	DueAt         string `dynamodbav:"dueAt,omitempty"`
	TTL           int64  `dynamodbav:"ttl"`

	lifecycleItem // timers and hand-offs (lifecycle.go)
}

type linkItem struct {
	Label string `dynamodbav:"label,omitempty"`
	URL   string `dynamodbav:"url"`
}

type ruleItem struct {
	Policy            string      `dynamodbav:"policy,omitempty"`
	Groups            []groupItem `dynamodbav:"groups,omitempty"`
	RejectPolicy      string      `dynamodbav:"rejectPolicy,omitempty"`
	AllowSelfApproval bool        `dynamodbav:"allowSelfApproval,omitempty"`
}

type groupItem struct {
	Name      string   `dynamodbav:"name"`
	Approvers []string `dynamodbav:"approvers,omitempty"`
	Min       int      `dynamodbav:"min"`
}

type recipientItem struct {
	Address   string `dynamodbav:"address"`
	Channel   string `dynamodbav:"channel"`
	TokenHash string `dynamodbav:"tokenHash"`
	PageKey   string `dynamodbav:"pageKey,omitempty"`
	Email     string `dynamodbav:"email,omitempty"`
	PrevHash  string `dynamodbav:"prevHash,omitempty"`
}

type chatItem struct {
	Channel string `dynamodbav:"channel"`
	TS      string `dynamodbav:"ts"`
}

type voteItem struct {
	By string `dynamodbav:"by"`
	// TokenHash names the voter of a quick vote by their token's hash.
	TokenHash string   `dynamodbav:"tokenHash,omitempty"`
	Email     string   `dynamodbav:"email,omitempty"`
	Channel   string   `dynamodbav:"channel"`
	Choice    string   `dynamodbav:"choice"`
	Comment   string   `dynamodbav:"comment,omitempty"`
	At        string   `dynamodbav:"at"`
	Groups    []string `dynamodbav:"groups,omitempty"`
}

type effectItem struct {
	Kind       string `dynamodbav:"kind"`
	Target     string `dynamodbav:"target,omitempty"`
	State      string `dynamodbav:"state"`
	Attempts   int    `dynamodbav:"attempts"`
	Lease      string `dynamodbav:"lease,omitempty"`
	LeaseUntil string `dynamodbav:"leaseUntil,omitempty"`
	NextAt     string `dynamodbav:"nextAt,omitempty"`
	Error      string `dynamodbav:"error,omitempty"`
	At         string `dynamodbav:"at,omitempty"`
}

// tokenItem is the first version's stored form of a token, of which only the
// request ID is still read. Only the token's hash is kept, in the key.
type tokenItem struct {
	PK        string `dynamodbav:"pk"`
	RequestID string `dynamodbav:"requestId"`
}

// newRequestItem is the item of r at version, with its index keys: the
// sharded pending key while r is pending, the sharded due key and due time
// while something is due on it.
func newRequestItem(r *approval.Request, version int64, keep time.Duration) requestItem {
	it := requestItem{
		PK:           requestKey(r.ID),
		Kind:         "request",
		ID:           r.ID,
		Version:      &version,
		TaskToken:    r.TaskToken,
		WebhookURL:   r.WebhookURL,
		Title:        r.Title,
		Details:      r.Details,
		Requester:    r.Requester,
		Approvers:    append([]string(nil), r.Approvers...),
		SlackChannel: r.SlackChannel,
		ChatChannel:  r.ChatMessage.Channel,
		ChatTS:       r.ChatMessage.TS,
		Status:       string(r.Status),
		CreatedAt:    formatTime(r.CreatedAt),
		ExpiresAt:    formatTime(r.ExpiresAt),
		Reason:       r.Reason,
		TTL:          ttlOf(r.ExpiresAt, keep),
		Rule: &ruleItem{
			Policy:            string(r.Rule.Policy),
			RejectPolicy:      string(r.Rule.RejectPolicy),
			AllowSelfApproval: r.Rule.AllowSelfApproval,
		},
	}
	if c := r.Canceled; c != nil {
		it.CanceledBy, it.CancelReason, it.CanceledAt = c.By, c.Reason, formatTime(c.At)
	}
	it.QuickReject, it.QuickApprove = r.QuickTokens()
	for _, g := range r.Rule.Groups {
		it.Rule.Groups = append(it.Rule.Groups, groupItem{Name: g.Name, Approvers: append([]string(nil), g.Approvers...), Min: g.Min})
	}
	for _, l := range r.Links {
		it.Links = append(it.Links, linkItem{Label: l.Label, URL: l.URL})
	}
	for _, rc := range r.Recipients {
		it.Recipients = append(it.Recipients, recipientItem{
			Address: rc.Address, Channel: string(rc.Channel), TokenHash: rc.TokenHash, PageKey: rc.PageKey, Email: rc.Email,
			PrevHash: rc.PrevHash,
		})
	}
	for _, m := range r.DirectMessages {
		it.DirectMessages = append(it.DirectMessages, chatItem{Channel: m.Channel, TS: m.TS})
	}
	it.lifecycleItem = newLifecycleItem(r)
	if d := r.Decision; d != nil {
		it.DecisionChoice = string(d.Choice)
		it.DecidedBy = d.By
		it.DecisionChannel = string(d.Channel)
		it.DecisionComment = d.Comment
		it.DecidedAt = formatTime(d.At)
	}
	for _, v := range r.Votes {
		it.Votes = append(it.Votes, voteItem{
			By: v.By, Email: v.Email, Channel: string(v.Channel), Choice: string(v.Choice), Comment: v.Comment,
			At: formatTime(v.At), Groups: append([]string(nil), v.Groups...),
		})
	}
	for _, e := range r.Effects {
		it.Effects = append(it.Effects, effectItem{
			Kind: string(e.Kind), Target: e.Target, State: string(e.State), Attempts: e.Attempts, Lease: e.Lease,
			LeaseUntil: formatTime(e.LeaseUntil), NextAt: formatTime(e.NextAt), Error: e.Error, At: formatTime(e.At),
		})
	}
	for _, e := range r.Audit {
		b, _ := e.MarshalJSON() // cannot fail
		it.Audit = append(it.Audit, string(b))
	}
	n := shard(r.ID)
	if r.Status == approval.StatusPending {
		it.PendingPK = pendingShard(n)
	} else {
		it.UndeliveredPK = closedShard(n)
	}
	if at := r.DueAt(); !at.IsZero() {
		it.DueShard, it.DueAt = dueShard(n), formatTime(at)
	}
	return it
}

// request decodes the item. An item of the first version (no version
// attribute) becomes the version 2 request it stands for, at Version 0; see
// upgrade.
func (it *requestItem) request() (*approval.Request, error) {
	r := &approval.Request{
		ID:           it.ID,
		TaskToken:    it.TaskToken,
		WebhookURL:   it.WebhookURL,
		Title:        it.Title,
		Details:      it.Details,
		Requester:    it.Requester,
		Approvers:    it.Approvers,
		SlackChannel: it.SlackChannel,
		ChatMessage:  approval.ChatMessage{Channel: it.ChatChannel, TS: it.ChatTS},
		Status:       approval.Status(it.Status),
		Reason:       it.Reason,
	}
	if it.CanceledBy != "" {
		at, err := parseTime("canceledAt", it.CanceledAt)
		if err != nil {
			return nil, err
		}
		r.Canceled = &approval.Cancellation{By: it.CanceledBy, Reason: it.CancelReason, At: at}
	}
	if it.Version != nil {
		r.Version = *it.Version
	}
	var err error
	if r.CreatedAt, err = parseTime("createdAt", it.CreatedAt); err != nil {
		return nil, err
	}
	if r.ExpiresAt, err = parseTime("expiresAt", it.ExpiresAt); err != nil {
		return nil, err
	}
	if it.Rule != nil {
		r.Rule = approval.Rule{
			Policy:            approval.Policy(it.Rule.Policy),
			RejectPolicy:      approval.RejectPolicy(it.Rule.RejectPolicy),
			AllowSelfApproval: it.Rule.AllowSelfApproval,
		}
		for _, g := range it.Rule.Groups {
			r.Rule.Groups = append(r.Rule.Groups, approval.Group{Name: g.Name, Approvers: g.Approvers, Min: g.Min})
		}
	}
	for _, l := range it.Links {
		r.Links = append(r.Links, approval.Link{Label: l.Label, URL: l.URL})
	}
	for _, rc := range it.Recipients {
		r.Recipients = append(r.Recipients, approval.Recipient{
			Address: rc.Address, Channel: approval.Channel(rc.Channel), TokenHash: rc.TokenHash, PageKey: rc.PageKey, Email: rc.Email,
			PrevHash: rc.PrevHash,
		})
	}
	if err := it.lifecycleItem.set(r); err != nil {
		return nil, err
	}
	for _, m := range it.DirectMessages {
		r.DirectMessages = append(r.DirectMessages, approval.ChatMessage{Channel: m.Channel, TS: m.TS})
	}
	if err := it.setOutcome(r); err != nil {
		return nil, err
	}
	if it.DecidedByToken != "" || slices.ContainsFunc(it.Votes, func(v voteItem) bool { return v.TokenHash != "" }) {
		it.nameQuickVoter(r)
		r.SupersedeEffects() // the close effects a quick vote appended
	}
	for _, line := range it.Audit {
		e, err := approval.ParseAuditEntry([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("attribute audit: %w", err)
		}
		r.Audit = append(r.Audit, e)
	}
	if it.Version == nil {
		if err := it.upgrade(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// setOutcome decodes the item's votes, decision and effects into r.
func (it *requestItem) setOutcome(r *approval.Request) error {
	if it.DecidedAt != "" {
		at, err := parseTime("decidedAt", it.DecidedAt)
		if err != nil {
			return err
		}
		r.Decision = &approval.Decision{
			Choice:  approval.Choice(it.DecisionChoice),
			By:      it.DecidedBy,
			Channel: approval.Channel(it.DecisionChannel),
			Comment: it.DecisionComment,
			At:      at,
		}
	}
	for _, v := range it.Votes {
		at, err := parseTime("votes.at", v.At)
		if err != nil {
			return err
		}
		r.Votes = append(r.Votes, approval.Vote{
			By: v.By, Email: v.Email, Channel: approval.Channel(v.Channel), Choice: approval.Choice(v.Choice),
			Comment: v.Comment, At: at, Groups: v.Groups,
		})
	}
	for _, e := range it.Effects {
		ef := approval.Effect{
			Kind: approval.EffectKind(e.Kind), Target: e.Target, State: approval.EffectState(e.State),
			Attempts: e.Attempts, Lease: e.Lease, Error: e.Error,
		}
		var err error
		if ef.LeaseUntil, err = parseTime("effects.leaseUntil", e.LeaseUntil); err != nil {
			return err
		}
		if ef.NextAt, err = parseTime("effects.nextAt", e.NextAt); err != nil {
			return err
		}
		if ef.At, err = parseTime("effects.at", e.At); err != nil {
			return err
		}
		r.Effects = append(r.Effects, ef)
	}
	return nil
}

// nameQuickVoter fills in who cast a quick vote, which names its voter by the
// hash of their token: the recipient holding it.
func (it *requestItem) nameQuickVoter(r *approval.Request) {
	for i, v := range it.Votes {
		r.NameVoter(&r.Votes[i], v.TokenHash)
	}
	if rc, ok := r.RecipientByHash(it.DecidedByToken); ok && r.Decision != nil && it.DecidedByToken != "" {
		r.Decision.By, r.Decision.Channel = rc.Identity().ID, rc.Channel
	}
}

// upgrade completes r, decoded from an item of the first version, as the
// version 2 request it stands for. That version decided on the first vote:
// its rule is "any" with one reject rejecting; its decision, if any, was the
// only vote. A closed request whose outcome had not been delivered owes a
// delivery: one attempt, possibly successful, was made or is being made
// under the old lease, so a later "workflow gone" counts as done. With no
// lease recorded the delivery is due from the close on.
func (it *requestItem) upgrade(r *approval.Request) error {
	p, err := approval.ParsePolicy(it.Policy)
	if err != nil {
		p = approval.PolicyAny
	}
	r.Rule = approval.Rule{Policy: p, RejectPolicy: approval.RejectAny}
	if d := r.Decision; d != nil {
		r.Votes = []approval.Vote{{By: d.By, Channel: d.Channel, Choice: d.Choice, Comment: d.Comment, At: d.At}}
	}
	if r.Status == approval.StatusPending || it.Delivered {
		return nil
	}
	lease, err := parseTime("deliveryLeaseUntil", it.DeliveryLeaseUntil)
	if err != nil {
		return err
	}
	if lease.IsZero() {
		lease = r.ClosedAt()
	}
	r.Effects = append(r.Effects, approval.Effect{
		Kind: approval.EffectDeliver, State: approval.EffectPending, Attempts: 1, LeaseUntil: lease,
	})
	return nil
}

// idOf returns the request ID of a request item's key.
func idOf(pk string) (string, bool) {
	return strings.CutPrefix(pk, requestPrefix)
}
