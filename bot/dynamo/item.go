package dynamo

import (
	"fmt"
	"strings"
	"time"

	"approvalbot/bot/approval"
)

// Item keys and the attributes that the table and its indexes are defined on.
// Everything else about an item's shape stays private to this package.
const (
	// KeyAttribute is the table's partition key (type S): "REQ#<id>" for a
	// request, "TOK#<hex sha256 of the token>" for a token.
	KeyAttribute = "pk"
	// TTLAttribute holds, in epoch seconds (type N), when DynamoDB may delete
	// the item: its expiry plus the retention period.
	TTLAttribute = "ttl"
	// PendingIndex is the sparse index of pending requests: partition key
	// PendingKeyAttribute (S), sort key CreatedAtAttribute (S), keys only.
	PendingIndex = "pending"
	// UndeliveredIndex is the sparse index of closed requests whose outcome has
	// not reached the workflow: partition key UndeliveredKeyAttribute (S), sort
	// key CreatedAtAttribute (S), keys only.
	UndeliveredIndex = "undelivered"
	// PendingKeyAttribute is present, with the value "PENDING", only on
	// pending requests.
	PendingKeyAttribute = "pendingPK"
	// UndeliveredKeyAttribute is present, with the value "UNDELIVERED", only on
	// closed requests whose outcome is not delivered.
	UndeliveredKeyAttribute = "undeliveredPK"
	// CreatedAtAttribute is a request's creation time (S), fixed-width UTC
	// RFC 3339 with nine fraction digits (2031-05-06T07:08:09.123000000Z), so
	// that byte order is time order. Every stored time has this form.
	CreatedAtAttribute = "createdAt"
)

// leaseAttribute holds the end of a request's delivery lease (S, timeLayout).
// It is absent when no lease was taken or the outcome is delivered. No index
// uses it, and it is not part of requestItem: only LeaseDelivery sets it.
const leaseAttribute = "deliveryLeaseUntil"

const (
	requestPrefix    = "REQ#"
	tokenPrefix      = "TOK#"
	pendingValue     = "PENDING"
	undeliveredValue = "UNDELIVERED"
)

// timeLayout stores instants as fixed-width UTC RFC 3339 strings, so that their
// byte order is their time order: the store compares them in conditions
// (expiresAt > :now) and sorts the indexes by them.
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

// requestItem is the stored form of an approval.Request.
type requestItem struct {
	PK         string          `dynamodbav:"pk"`
	Kind       string          `dynamodbav:"kind"`
	ID         string          `dynamodbav:"id"`
	TaskToken  string          `dynamodbav:"taskToken,omitempty"`
	WebhookURL string          `dynamodbav:"webhookURL,omitempty"`
	Title      string          `dynamodbav:"title"`
	Details    string          `dynamodbav:"details,omitempty"`
	Links      []linkItem      `dynamodbav:"links,omitempty"`
	Requester  string          `dynamodbav:"requester"`
	Approvers  []string        `dynamodbav:"approvers,omitempty"`
	Policy     string          `dynamodbav:"policy,omitempty"`
	Recipients []recipientItem `dynamodbav:"recipients,omitempty"`

	SlackChannel string `dynamodbav:"slackChannel,omitempty"`
	ChatChannel  string `dynamodbav:"chatChannel,omitempty"`
	ChatTS       string `dynamodbav:"chatTS,omitempty"`

	Status    string `dynamodbav:"status"`
	CreatedAt string `dynamodbav:"createdAt"`
	ExpiresAt string `dynamodbav:"expiresAt"`
	Delivered bool   `dynamodbav:"delivered"`

	DecisionChoice  string `dynamodbav:"decisionChoice,omitempty"`
	DecidedBy       string `dynamodbav:"decidedBy,omitempty"`
	DecisionChannel string `dynamodbav:"decisionChannel,omitempty"`
	DecisionComment string `dynamodbav:"decisionComment,omitempty"`
	DecidedAt       string `dynamodbav:"decidedAt,omitempty"`

	PendingPK     string `dynamodbav:"pendingPK,omitempty"`
	UndeliveredPK string `dynamodbav:"undeliveredPK,omitempty"`
	TTL           int64  `dynamodbav:"ttl"`
}

type linkItem struct {
	Label string `dynamodbav:"label,omitempty"`
	URL   string `dynamodbav:"url"`
}

type recipientItem struct {
	Address   string `dynamodbav:"address"`
	Channel   string `dynamodbav:"channel"`
	TokenHash string `dynamodbav:"tokenHash"`
	PageKey   string `dynamodbav:"pageKey,omitempty"`
}

// tokenItem is the stored form of an approval.Token. Only the token's hash is
// kept, in the key.
type tokenItem struct {
	PK        string `dynamodbav:"pk"`
	Kind      string `dynamodbav:"kind"`
	RequestID string `dynamodbav:"requestId"`
	Recipient string `dynamodbav:"recipient"`
	Channel   string `dynamodbav:"channel"`
	PageKey   string `dynamodbav:"pageKey,omitempty"`
	ExpiresAt string `dynamodbav:"expiresAt"`
	UsedAt    string `dynamodbav:"usedAt,omitempty"`
	TTL       int64  `dynamodbav:"ttl"`
}

// indexKeys are the sparse index keys that a request in this state carries.
func indexKeys(s approval.Status, delivered bool) (pending, undelivered string) {
	if s == approval.StatusPending {
		return pendingValue, ""
	}
	if !delivered {
		return "", undeliveredValue
	}
	return "", ""
}

func newRequestItem(r *approval.Request, keep time.Duration) requestItem {
	it := requestItem{
		PK:           requestKey(r.ID),
		Kind:         "request",
		ID:           r.ID,
		TaskToken:    r.TaskToken,
		WebhookURL:   r.WebhookURL,
		Title:        r.Title,
		Details:      r.Details,
		Requester:    r.Requester,
		Approvers:    append([]string(nil), r.Approvers...),
		Policy:       string(r.Policy),
		SlackChannel: r.SlackChannel,
		ChatChannel:  r.ChatMessage.Channel,
		ChatTS:       r.ChatMessage.TS,
		Status:       string(r.Status),
		CreatedAt:    formatTime(r.CreatedAt),
		ExpiresAt:    formatTime(r.ExpiresAt),
		Delivered:    r.Delivered,
		TTL:          ttlOf(r.ExpiresAt, keep),
	}
	for _, l := range r.Links {
		it.Links = append(it.Links, linkItem{Label: l.Label, URL: l.URL})
	}
	for _, rc := range r.Recipients {
		it.Recipients = append(it.Recipients, recipientItem{
			Address: rc.Address, Channel: string(rc.Channel), TokenHash: rc.TokenHash, PageKey: rc.PageKey,
		})
	}
	if d := r.Decision; d != nil {
		it.DecisionChoice = string(d.Choice)
		it.DecidedBy = d.By
		it.DecisionChannel = string(d.Channel)
		it.DecisionComment = d.Comment
		it.DecidedAt = formatTime(d.At)
	}
	it.PendingPK, it.UndeliveredPK = indexKeys(r.Status, r.Delivered)
	return it
}

func (it *requestItem) request() (*approval.Request, error) {
	r := &approval.Request{
		ID:           it.ID,
		TaskToken:    it.TaskToken,
		WebhookURL:   it.WebhookURL,
		Title:        it.Title,
		Details:      it.Details,
		Requester:    it.Requester,
		Approvers:    it.Approvers,
		Policy:       approval.Policy(it.Policy),
		SlackChannel: it.SlackChannel,
		ChatMessage:  approval.ChatMessage{Channel: it.ChatChannel, TS: it.ChatTS},
		Status:       approval.Status(it.Status),
		Delivered:    it.Delivered,
	}
	var err error
	if r.CreatedAt, err = parseTime("createdAt", it.CreatedAt); err != nil {
		return nil, err
	}
	if r.ExpiresAt, err = parseTime("expiresAt", it.ExpiresAt); err != nil {
		return nil, err
	}
	for _, l := range it.Links {
		r.Links = append(r.Links, approval.Link{Label: l.Label, URL: l.URL})
	}
	for _, rc := range it.Recipients {
		r.Recipients = append(r.Recipients, approval.Recipient{
			Address: rc.Address, Channel: approval.Channel(rc.Channel), TokenHash: rc.TokenHash, PageKey: rc.PageKey,
		})
	}
	if it.DecidedAt != "" {
		at, err := parseTime("decidedAt", it.DecidedAt)
		if err != nil {
			return nil, err
		}
		r.Decision = &approval.Decision{
			Choice:  approval.Choice(it.DecisionChoice),
			By:      it.DecidedBy,
			Channel: approval.Channel(it.DecisionChannel),
			Comment: it.DecisionComment,
			At:      at,
		}
	}
	return r, nil
}

func newTokenItem(t approval.Token, keep time.Duration) tokenItem {
	return tokenItem{
		PK:        tokenKey(t.Hash),
		Kind:      "token",
		RequestID: t.RequestID,
		Recipient: t.Recipient,
		Channel:   string(t.Channel),
		PageKey:   t.PageKey,
		ExpiresAt: formatTime(t.ExpiresAt),
		UsedAt:    formatTime(t.UsedAt),
		TTL:       ttlOf(t.ExpiresAt, keep),
	}
}

func (it *tokenItem) token() (*approval.Token, error) {
	t := &approval.Token{
		Hash:      strings.TrimPrefix(it.PK, tokenPrefix),
		RequestID: it.RequestID,
		Recipient: it.Recipient,
		Channel:   approval.Channel(it.Channel),
		PageKey:   it.PageKey,
	}
	var err error
	if t.ExpiresAt, err = parseTime("expiresAt", it.ExpiresAt); err != nil {
		return nil, err
	}
	if t.UsedAt, err = parseTime("usedAt", it.UsedAt); err != nil {
		return nil, err
	}
	return t, nil
}
