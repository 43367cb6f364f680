package approval

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// The audit trail.
//
// Every fact about a request (it was created, a notification was sent or
// failed, a vote, its close, the delivery of its outcome, a cancellation, an
// extension, and the events of delegation, escalation and reminders) becomes
// an AuditEntry in the request's own chain, Request.Audit: entry n carries the
// SHA-256 of entry n-1 (Prev) and its own (Hash), computed over its canonical
// form. The entries are derived from the request's state by one step, seal,
// run by the Service before every full write of a request (CreateRequest,
// UpdateRequest): it compares the request with its trail and appends an entry
// for every fact the trail does not hold yet. So whoever changed the request
// (any process, any code path, a partial write that recorded a vote without
// its entry) has its facts sealed at the next full write. The chain lives in
// the request's record and is written with it, atomically; stores also append
// the new entries to their log (AuditLog), which keeps them when a record is
// changed.
//
// Above the requests' chains, checkpoints form one chain over the whole log:
// Service.Checkpoint (run by the sweep) seals the heads of the requests whose
// chains grew since the previous checkpoint, so that editing, removing or
// truncating a request's chain, or removing a whole request, is detected
// (VerifyAudit), except where a request is past its retention.

// AuditKind names an event of the audit trail.
type AuditKind string

// The events of the audit trail.
const (
	// AuditCreated: the request was stored (By the requester, with its
	// title, approvers, rule and expiry).
	AuditCreated AuditKind = "created"
	// AuditNotified and AuditNotifyFailed: a notification (Effect email,
	// post or dm) was sent to Target, or an attempt failed (Final once given
	// up).
	AuditNotified     AuditKind = "notification_sent"
	AuditNotifyFailed AuditKind = "notification_failed"
	// AuditVote: By voted Choice through Channel.
	AuditVote AuditKind = "vote"
	// AuditDelegated, AuditEscalated and AuditReminded are noted by the code
	// that delegates a vote, escalates a request or reminds approvers
	// (Request.Note), or derived from their effects (see auditedEffects).
	AuditDelegated AuditKind = "delegated"
	AuditEscalated AuditKind = "escalated"
	AuditReminded  AuditKind = "reminded"
	// AuditClosed: the request left pending, or changed its closed status
	// (Status, Reason; the deciding vote's By, Choice and Comment).
	AuditClosed AuditKind = "closed"
	// AuditDelivered and AuditDeliveryFailed: the outcome reached the
	// workflow (Step Functions, a webhook), or an attempt failed.
	AuditDelivered      AuditKind = "delivered"
	AuditDeliveryFailed AuditKind = "delivery_failed"
	// AuditCanceled: By withdrew the request (Comment: why).
	AuditCanceled AuditKind = "canceled"
	// AuditExtended: the request's expiry moved to ExpiresAt.
	AuditExtended AuditKind = "extended"
	// AuditCheckpoint: an entry of the global chain sealing the Heads of
	// the requests whose chains grew since the previous checkpoint.
	AuditCheckpoint AuditKind = "checkpoint"
)

// auditedEffects are the effects whose outcomes are events of the trail: the
// entry of a success and that of a failed attempt. Effects not listed
// (deleting pages, updating chat messages) leave no entry. Code that adds an
// effect kind worth auditing (a reminder, an escalation) adds it here.
var auditedEffects = map[EffectKind][2]AuditKind{
	EffectEmail:   {AuditNotified, AuditNotifyFailed},
	EffectPost:    {AuditNotified, AuditNotifyFailed},
	EffectDM:      {AuditNotified, AuditNotifyFailed},
	EffectDeliver: {AuditDelivered, AuditDeliveryFailed},
}

// AuditHead is where a request's chain stood: its last entry's Seq and Hash,
// and until when the store keeps the request (zero: for good).
type AuditHead struct {
	RequestID string
	Seq       int
	Hash      string
	KeepUntil time.Time
}

// AuditEntry is one event of the audit trail. Which fields are set depends on
// Kind; see the constants. RequestID is empty for checkpoints, whose Seq
// numbers the global chain.
type AuditEntry struct {
	RequestID string
	Seq       int
	Kind      AuditKind
	At        time.Time
	// By is who acted: the requester, a voter, who canceled; empty for the
	// bot itself.
	By      string
	Email   string // a Slack voter's profile email
	Channel Channel
	Choice  Choice
	Comment string // a vote's comment, a cancellation's reason
	Groups  []string
	Status  Status
	Reason  string
	// Effect, Target, Attempt, Final and Error describe an effect's outcome.
	Effect  EffectKind
	Target  string
	Attempt int
	Final   bool
	Error   string
	// Title, Approvers, Rule and ExpiresAt describe a created (or
	// extended) request.
	Title     string
	Approvers []string
	Rule      string
	ExpiresAt time.Time
	Detail    string
	// Heads, Mark, KeepUntil and PrevKeepUntil belong to checkpoints: the
	// heads sealed, the store's place in its log after them, until when the
	// checkpoint is kept, and until when the previous one was.
	Heads         []AuditHead
	Mark          string
	KeepUntil     time.Time
	PrevKeepUntil time.Time
	// Prev is the Hash of the previous entry of the chain ("" for the
	// first); Hash is hex SHA-256(Prev's 32 bytes || the canonical form).
	Prev string
	Hash string
}

// auditTime is how the trail writes instants: UTC, milliseconds.
const auditTime = "2006-01-02T15:04:05.000Z07:00"

func formatAuditTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(auditTime)
}

func parseAuditTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", field, err)
	}
	return t.UTC(), nil
}

// entryJSON is the canonical and exported form of an entry: the JSON Lines of
// an export and of GET /api/audit, and (without prev and hash) what the hash
// covers. Its field order is fixed.
type entryJSON struct {
	RequestID     string     `json:"requestId"`
	Seq           int        `json:"seq"`
	Kind          string     `json:"kind"`
	At            string     `json:"at"`
	By            string     `json:"by,omitempty"`
	Email         string     `json:"email,omitempty"`
	Channel       string     `json:"channel,omitempty"`
	Choice        string     `json:"choice,omitempty"`
	Comment       string     `json:"comment,omitempty"`
	Groups        []string   `json:"groups,omitempty"`
	Status        string     `json:"status,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	Effect        string     `json:"effect,omitempty"`
	Target        string     `json:"target,omitempty"`
	Attempt       int        `json:"attempt,omitempty"`
	Final         bool       `json:"final,omitempty"`
	Error         string     `json:"error,omitempty"`
	Title         string     `json:"title,omitempty"`
	Approvers     []string   `json:"approvers,omitempty"`
	Rule          string     `json:"rule,omitempty"`
	ExpiresAt     string     `json:"expiresAt,omitempty"`
	Detail        string     `json:"detail,omitempty"`
	Heads         []headJSON `json:"heads,omitempty"`
	Mark          string     `json:"mark,omitempty"`
	KeepUntil     string     `json:"keepUntil,omitempty"`
	PrevKeepUntil string     `json:"prevKeepUntil,omitempty"`
	Prev          string     `json:"prev,omitempty"`
	Hash          string     `json:"hash,omitempty"`
}

type headJSON struct {
	RequestID string `json:"requestId"`
	Seq       int    `json:"seq"`
	Hash      string `json:"hash"`
	KeepUntil string `json:"keepUntil,omitempty"`
}

func (e AuditEntry) toJSON() entryJSON {
	j := entryJSON{
		RequestID: e.RequestID, Seq: e.Seq, Kind: string(e.Kind), At: formatAuditTime(e.At),
		By: e.By, Email: e.Email, Channel: string(e.Channel), Choice: string(e.Choice), Comment: e.Comment,
		Groups: e.Groups, Status: string(e.Status), Reason: e.Reason,
		Effect: string(e.Effect), Target: e.Target, Attempt: e.Attempt, Final: e.Final, Error: e.Error,
		Title: e.Title, Approvers: e.Approvers, Rule: e.Rule, ExpiresAt: formatAuditTime(e.ExpiresAt),
		Detail: e.Detail, Mark: e.Mark, KeepUntil: formatAuditTime(e.KeepUntil),
		PrevKeepUntil: formatAuditTime(e.PrevKeepUntil), Prev: e.Prev, Hash: e.Hash,
	}
	for _, h := range e.Heads {
		j.Heads = append(j.Heads, headJSON{RequestID: h.RequestID, Seq: h.Seq, Hash: h.Hash, KeepUntil: formatAuditTime(h.KeepUntil)})
	}
	return j
}

func (j entryJSON) entry() (AuditEntry, error) {
	e := AuditEntry{
		RequestID: j.RequestID, Seq: j.Seq, Kind: AuditKind(j.Kind),
		By: j.By, Email: j.Email, Channel: Channel(j.Channel), Choice: Choice(j.Choice), Comment: j.Comment,
		Groups: j.Groups, Status: Status(j.Status), Reason: j.Reason,
		Effect: EffectKind(j.Effect), Target: j.Target, Attempt: j.Attempt, Final: j.Final, Error: j.Error,
		Title: j.Title, Approvers: j.Approvers, Rule: j.Rule, Detail: j.Detail, Mark: j.Mark,
		Prev: j.Prev, Hash: j.Hash,
	}
	var err error
	for _, f := range []struct {
		name string
		s    string
		dst  *time.Time
	}{{"at", j.At, &e.At}, {"expiresAt", j.ExpiresAt, &e.ExpiresAt}, {"keepUntil", j.KeepUntil, &e.KeepUntil}, {"prevKeepUntil", j.PrevKeepUntil, &e.PrevKeepUntil}} {
		if *f.dst, err = parseAuditTime(f.name, f.s); err != nil {
			return AuditEntry{}, err
		}
	}
	for _, h := range j.Heads {
		ku, err := parseAuditTime("heads.keepUntil", h.KeepUntil)
		if err != nil {
			return AuditEntry{}, err
		}
		e.Heads = append(e.Heads, AuditHead{RequestID: h.RequestID, Seq: h.Seq, Hash: h.Hash, KeepUntil: ku})
	}
	return e, nil
}

// marshal writes j as one line of compact JSON (without the newline),
// leaving <, > and & as they are.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v) // cannot fail: strings, numbers and slices of them
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// MarshalJSON writes the entry in its exported form, one line of JSON.
func (e AuditEntry) MarshalJSON() ([]byte, error) { return marshal(e.toJSON()), nil }

// UnmarshalJSON reads an entry in its exported form.
func (e *AuditEntry) UnmarshalJSON(b []byte) error {
	got, err := decodeEntry(b)
	if err != nil {
		return err
	}
	*e = got
	return nil
}

// ParseAuditEntry reads one line of an audit export. It decodes the line
// once (json.Unmarshal into an AuditEntry would scan it twice, once to find
// its end and once in UnmarshalJSON): stores read every entry of a request on
// each read.
func ParseAuditEntry(line []byte) (AuditEntry, error) {
	e, err := decodeEntry(line)
	if err != nil {
		return AuditEntry{}, fmt.Errorf("not an audit entry: %w", err)
	}
	return e, nil
}

// decodeEntry reads an entry in its exported form.
func decodeEntry(b []byte) (AuditEntry, error) {
	var j entryJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return AuditEntry{}, err
	}
	return j.entry()
}

// ComputeHash is the hash the entry must carry: hex SHA-256 of its Prev (32
// bytes; nothing for the first entry of a chain) followed by its canonical
// form (its exported JSON without prev and hash).
func (e AuditEntry) ComputeHash() string {
	j := e.toJSON()
	j.Prev, j.Hash = "", ""
	h := sha256.New()
	if prev, err := hex.DecodeString(e.Prev); err == nil {
		h.Write(prev)
	} else {
		h.Write([]byte(e.Prev)) // not a hash: still covered, never matches a real chain
	}
	h.Write(marshal(j))
	return hex.EncodeToString(h.Sum(nil))
}

// chain sets e's Prev to prev and its Hash.
func (e *AuditEntry) chain(prev string) {
	e.Prev = prev
	e.Hash = e.ComputeHash()
}

// Head is where the request's chain stands: its last entry (zero Seq when
// it has none).
func (r *Request) Head() AuditHead {
	for i := len(r.Audit) - 1; i >= 0; i-- {
		if e := r.Audit[i]; e.Seq > 0 {
			return AuditHead{RequestID: r.ID, Seq: e.Seq, Hash: e.Hash}
		}
	}
	return AuditHead{RequestID: r.ID}
}

// Note records an event of the request that its state does not show by
// itself (who delegated their vote to whom, why it was escalated), for the
// audit trail: it is appended to r.Audit unsealed (Seq 0), and the next full
// write of the request seals it into the chain, after the facts of the
// state that happened before it. It is lost with a write that fails, so code
// that computes a change again after a conflict notes it again. RequestID,
// Seq, Prev and Hash are set by the seal, and At when zero.
func (r *Request) Note(e AuditEntry) {
	e.Seq, e.Prev, e.Hash = 0, "", ""
	r.Audit = append(r.Audit, e)
}

// effectFact identifies one outcome of one attempt of an effect.
type effectFact struct {
	kind    EffectKind
	target  string
	attempt int
	final   bool
	failed  bool
}

// auditedState is what a request's trail holds.
type auditedState struct {
	votes     int
	status    Status
	canceled  bool
	expiresAt time.Time
	effects   map[effectFact]bool
}

func (r *Request) audited() auditedState {
	st := auditedState{status: StatusPending, effects: map[effectFact]bool{}}
	for _, e := range r.Audit {
		if e.Seq == 0 {
			continue // noted, not sealed yet
		}
		switch e.Kind {
		case AuditCreated, AuditExtended:
			if !e.ExpiresAt.IsZero() {
				st.expiresAt = e.ExpiresAt
			}
		case AuditVote:
			st.votes++
		case AuditClosed:
			st.status = e.Status
		case AuditCanceled:
			st.status, st.canceled = StatusCanceled, true
		}
		if e.Effect != "" {
			st.effects[effectFact{kind: e.Effect, target: e.Target, attempt: e.Attempt, final: e.Final, failed: e.Error != ""}] = true
		}
	}
	return st
}

// seal appends to r.Audit an entry for every fact of r that its trail does
// not hold yet, in the order they happened, each chained to the one before,
// with the events noted since the request was read (Note). created is set for
// a request about to be stored for the first time; a stored request without a
// trail predates it, and its created entry says so. now stands for the time of
// facts that carry none. Sealing a sealed request adds nothing.
func (r *Request) seal(now time.Time, created bool) {
	st := r.audited()
	notes := r.takeNotes()
	var facts []AuditEntry
	if len(r.Audit) == 0 {
		facts = append(facts, r.createdFact(created))
		st.expiresAt = r.ExpiresAt
	}
	noted, extendNoted := r.notedFacts(notes, now)
	facts = append(facts, noted...)
	for _, v := range r.Votes[min(st.votes, len(r.Votes)):] {
		facts = append(facts, AuditEntry{
			Kind: AuditVote, At: v.At, By: v.By, Email: v.Email, Channel: v.Channel, Choice: v.Choice,
			Comment: v.Comment, Groups: slices.Clone(v.Groups),
		})
	}
	if !extendNoted && !st.expiresAt.IsZero() && !r.ExpiresAt.Equal(st.expiresAt) {
		facts = append(facts, AuditEntry{Kind: AuditExtended, At: now, ExpiresAt: r.ExpiresAt})
	}
	facts = append(facts, r.effectFacts(st, now)...)
	if r.Status != st.status {
		// The close comes before what follows from it (the delivery, the
		// pages, the chat update), sealed in the same write when a quick
		// vote closed the request without sealing.
		i := slices.IndexFunc(facts, func(f AuditEntry) bool {
			return f.Effect == EffectDeliver || f.Effect == EffectPages || f.Effect == EffectUpdate
		})
		if i < 0 {
			i = len(facts)
		}
		facts = slices.Insert(facts, i, r.closeFact(st, now))
	}
	if len(r.Audit) == 0 && !created {
		// A trail begun late: its facts in the order they happened. (A
		// trail kept from the start seals a change's facts in the order
		// they follow from each other: notes, votes, expiry, effects, then
		// the status they led to.)
		slices.SortStableFunc(facts, func(a, b AuditEntry) int { return a.At.Compare(b.At) })
	}
	prev := r.Head()
	for i := range facts {
		facts[i].RequestID = r.ID
		facts[i].Seq = prev.Seq + 1
		facts[i].chain(prev.Hash)
		prev = AuditHead{Seq: facts[i].Seq, Hash: facts[i].Hash}
		r.Audit = append(r.Audit, facts[i])
	}
}

// takeNotes removes from r.Audit the events noted since the request was read
// (entries not sealed yet) and returns them; r.Audit keeps the sealed trail.
func (r *Request) takeNotes() []AuditEntry {
	var notes []AuditEntry
	sealed := r.Audit[:0:0]
	for _, e := range r.Audit {
		if e.Seq == 0 {
			notes = append(notes, e)
		} else {
			sealed = append(sealed, e)
		}
	}
	r.Audit = sealed
	return notes
}

// createdFact is the first entry of r's trail. created is unset for a stored
// request whose trail begins late: the entry says so.
func (r *Request) createdFact(created bool) AuditEntry {
	e := AuditEntry{
		Kind: AuditCreated, At: r.CreatedAt, By: r.Requester, Title: r.Title,
		Approvers: slices.Clone(r.Approvers), Rule: r.Rule.Describe(len(r.Approvers)), ExpiresAt: r.ExpiresAt,
	}
	if !created {
		e.Detail = "recorded late: the request predates the audit trail"
	}
	return e
}

// notedFacts completes the noted events: now for those that carry no time, the
// expiry for an extension that names none. extended is set when one of them is
// an extension.
func (r *Request) notedFacts(notes []AuditEntry, now time.Time) (facts []AuditEntry, extended bool) {
	for _, n := range notes {
		if n.At.IsZero() {
			n.At = now
		}
		if n.Kind == AuditExtended {
			extended = true
			if n.ExpiresAt.IsZero() {
				n.ExpiresAt = r.ExpiresAt
			}
		}
		facts = append(facts, n)
	}
	return facts, extended
}

// effectFacts are the entries of the effects' outcomes that the trail does not
// hold yet (st.effects, which it marks): sent, failed for good, or an attempt
// that failed and will be retried.
func (r *Request) effectFacts(st auditedState, now time.Time) []AuditEntry {
	var facts []AuditEntry
	for _, e := range r.Effects {
		kinds, ok := auditedEffects[e.Kind]
		if !ok {
			continue
		}
		f := AuditEntry{Effect: e.Kind, Target: e.Target, Attempt: e.Attempts, At: e.At}
		switch e.Kind {
		case EffectEmail:
			f.Channel = ChannelEmail
		case EffectPost:
			f.Channel, f.Target = ChannelSlack, r.SlackChannel
		case EffectDM:
			f.Channel = ChannelSlack
		}
		switch {
		case e.State == EffectDone:
			f.Kind = kinds[0]
		case e.State == EffectFailed:
			f.Kind, f.Final, f.Error = kinds[1], true, e.Error
		case e.State == EffectPending && e.Error != "" && e.Lease == "":
			// An attempt failed and was recorded; the next is due at NextAt.
			f.Kind, f.Error, f.At = kinds[1], e.Error, e.LeaseUntil
		default:
			continue
		}
		if f.At.IsZero() {
			f.At = now
		}
		fact := effectFact{kind: e.Kind, target: f.Target, attempt: f.Attempt, final: f.Final, failed: f.Error != ""}
		if !st.effects[fact] {
			st.effects[fact] = true
			facts = append(facts, f)
		}
	}
	return facts
}

// closeFact is the entry of r's status moving away from the audited one.
func (r *Request) closeFact(st auditedState, now time.Time) AuditEntry {
	if r.Status == StatusCanceled && r.Canceled != nil && !st.canceled {
		c := r.Canceled
		return AuditEntry{Kind: AuditCanceled, At: c.At, By: c.By, Comment: c.Reason, Status: r.Status, Reason: r.Reason}
	}
	e := AuditEntry{Kind: AuditClosed, At: now, Status: r.Status, Reason: r.Reason}
	switch d := r.Decision; {
	case d != nil && r.Status.Decided():
		e.At, e.By, e.Channel, e.Choice, e.Comment = d.At, d.By, d.Channel, d.Choice, d.Comment
	case r.Status == StatusExpired && r.Reason == "":
		e.At = r.ExpiresAt
	}
	return e
}

// createRequest seals the trail of a new request and stores it; with
// withPages (see Service.pagesWithRequest), in the same write as its pages.
func (s *Service) createRequest(ctx context.Context, r *Request, withPages PagesWithRequest, pages map[string][]byte) error {
	r.seal(s.now(), true)
	if withPages != nil {
		return withPages.CreateWithPages(ctx, r, pages)
	}
	return s.Store.CreateRequest(ctx, r)
}

// pagesWithRequest is the page host when it stores pages in the same write as
// a request of the store (PagesWithRequest), or nil.
func (s *Service) pagesWithRequest() PagesWithRequest {
	if pw, ok := s.Pages.(PagesWithRequest); ok && pw.InStore(s.Store) {
		return pw
	}
	return nil
}

// updateRequest seals the trail of a changed request and writes it (see
// Store.UpdateRequest). Every change of a request in the core is written
// through it.
func (s *Service) updateRequest(ctx context.Context, r *Request) error {
	r.seal(s.now(), false)
	return s.Store.UpdateRequest(ctx, r)
}

// AuditQuery asks for a page of the audit log.
type AuditQuery struct {
	// Since, when set, keeps the entries at or after it.
	Since time.Time
	// Cursor continues after the page that returned it; empty starts at the
	// beginning of the log.
	Cursor string
	// Limit is about how many entries a page holds; 0 or less lets the
	// store choose.
	Limit int
}

// AuditLog is the part of a Store that keeps the audit trail beyond each
// request's own chain: the log of every entry, and the global chain of
// checkpoints.
type AuditLog interface {
	// ReadAudit returns a page of the log from q.Cursor on, and the cursor
	// of the next page ("" after the last): every request's entries in the
	// order of its chain, and the checkpoints in theirs. Stores whose log
	// is one sequence (memory, SQLite) return it in the order it was
	// stored; others (DynamoDB) a request's entries together, in the
	// table's order, and may hold a few more than q.Limit in a page.
	ReadAudit(ctx context.Context, q AuditQuery) ([]AuditEntry, string, error)
	// AuditChanged returns the heads, as their records hold them now, of up
	// to about limit requests whose chains grew after mark ("" for the
	// beginning of the log), and the mark after them (mark itself when
	// nothing grew). A store whose log is ordered by time may leave out
	// what was stored in the last minutes before now, until its index
	// settles; a later call returns it.
	AuditChanged(ctx context.Context, mark string, now time.Time, limit int) ([]AuditHead, string, error)
	// LastCheckpoint returns the newest checkpoint, or ErrNotFound.
	LastCheckpoint(ctx context.Context) (AuditEntry, error)
	// AddCheckpoint stores e as the next checkpoint; it returns ErrConflict
	// if a checkpoint with its Seq exists.
	AddCheckpoint(ctx context.Context, e AuditEntry) error
}

// ReadAudit returns a page of the audit log (see AuditLog.ReadAudit).
func (s *Service) ReadAudit(ctx context.Context, q AuditQuery) ([]AuditEntry, string, error) {
	es, next, err := s.Store.ReadAudit(ctx, q)
	if err != nil {
		return nil, "", fmt.Errorf("read audit: %w", err)
	}
	return es, next, nil
}

// maxCheckpointHeads bounds how many heads one checkpoint seals;
// maxCheckpoints how many checkpoints one call of Checkpoint writes.
const (
	maxCheckpointHeads = 500
	maxCheckpoints     = 20
)

// Checkpoint seals the heads of the requests whose chains grew since the
// previous checkpoint into new checkpoints of the global chain, and returns
// how many it wrote. Two processes checkpointing at once write each
// checkpoint once (the store refuses a second with the same Seq).
func (s *Service) Checkpoint(ctx context.Context) (int, error) {
	written := 0
	for range maxCheckpoints {
		last, err := s.Store.LastCheckpoint(ctx)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return written, fmt.Errorf("checkpoint: %w", err)
		}
		now := s.now()
		heads, mark, err := s.Store.AuditChanged(ctx, last.Mark, now, maxCheckpointHeads)
		if err != nil {
			return written, fmt.Errorf("checkpoint: %w", err)
		}
		if len(heads) == 0 {
			// Nothing grew (or only what no record holds: an entry of a
			// write that failed): nothing to seal.
			return written, nil
		}
		slices.SortFunc(heads, func(a, b AuditHead) int { return cmp.Compare(a.RequestID, b.RequestID) })
		cp := AuditEntry{
			Seq: last.Seq + 1, Kind: AuditCheckpoint, At: now, Heads: heads, Mark: mark,
			KeepUntil: keepUntil(heads), PrevKeepUntil: last.KeepUntil,
		}
		cp.chain(last.Hash)
		switch err := s.Store.AddCheckpoint(ctx, cp); {
		case errors.Is(err, ErrConflict):
			continue // another process wrote this one: go on after it
		case err != nil:
			return written, fmt.Errorf("checkpoint %d: %w", cp.Seq, err)
		}
		written++
		s.log().Info("audit checkpoint", "seq", cp.Seq, "heads", len(heads))
		if len(heads) < maxCheckpointHeads {
			return written, nil
		}
	}
	return written, nil
}

// keepUntil is until when a checkpoint of heads is kept: as long as the
// longest-kept of its requests, or for good when one of them is.
func keepUntil(heads []AuditHead) time.Time {
	var at time.Time
	for _, h := range heads {
		if h.KeepUntil.IsZero() {
			return time.Time{}
		}
		at = later(at, h.KeepUntil)
	}
	return at
}
