package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"approvalbot/bot/approval"
)

// The JSON forms of the columns links, approvers and recipients (shared with the
// first version) and doc (the v2 parts). The tags stay here, never on the
// core's types. Times are Unix milliseconds, 0 for the zero time.
type (
	linkJSON struct {
		Label string `json:"label,omitempty"`
		URL   string `json:"url"`
	}
	recipientJSON struct {
		Address   string `json:"address"`
		Channel   string `json:"channel"`
		TokenHash string `json:"tokenHash"`
		PageKey   string `json:"pageKey"`
		Email     string `json:"email,omitempty"`
		PrevHash  string `json:"prevHash,omitempty"`
	}
	docJSON struct {
		Rule           ruleJSON        `json:"rule"`
		Votes          []voteJSON      `json:"votes,omitempty"`
		Recipients     []recipientJSON `json:"recipients,omitempty"`
		Effects        []effectJSON    `json:"effects,omitempty"`
		DirectMessages []chatJSON      `json:"directMessages,omitempty"`
		Reason         string          `json:"reason,omitempty"`
		Decision       *decisionJSON   `json:"decision,omitempty"`
		Canceled       *cancelJSON     `json:"canceled,omitempty"`
		lifecycleJSON                  // timers and hand-offs (lifecycle.go)
		// Audit is the request's audit trail, each entry as exported (one
		// line of JSON, as a string); the triggers copy new entries to the
		// audit table.
		Audit []string `json:"audit,omitempty"`
	}
	cancelJSON struct {
		By     string `json:"by"`
		Reason string `json:"reason,omitempty"`
		At     int64  `json:"at"`
	}
	ruleJSON struct {
		Policy            string      `json:"policy,omitempty"`
		Groups            []groupJSON `json:"groups,omitempty"`
		RejectPolicy      string      `json:"rejectPolicy,omitempty"`
		AllowSelfApproval bool        `json:"allowSelfApproval,omitempty"`
	}
	groupJSON struct {
		Name      string   `json:"name"`
		Approvers []string `json:"approvers"`
		Min       int      `json:"min"`
	}
	voteJSON struct {
		By      string   `json:"by"`
		Email   string   `json:"email,omitempty"`
		Channel string   `json:"channel"`
		Choice  string   `json:"choice"`
		Comment string   `json:"comment,omitempty"`
		At      int64    `json:"at"`
		Groups  []string `json:"groups,omitempty"`
	}
	effectJSON struct {
		Kind       string `json:"kind"`
		Target     string `json:"target,omitempty"`
		State      string `json:"state"`
		Attempts   int    `json:"attempts,omitempty"`
		Lease      string `json:"lease,omitempty"`
		LeaseUntil int64  `json:"leaseUntil,omitempty"`
		NextAt     int64  `json:"nextAt,omitempty"`
		Error      string `json:"error,omitempty"`
		At         int64  `json:"at,omitempty"`
	}
	chatJSON struct {
		Channel string `json:"channel"`
		TS      string `json:"ts"`
	}
	decisionJSON struct {
		Choice  string `json:"choice"`
		By      string `json:"by"`
		Channel string `json:"channel"`
		Comment string `json:"comment,omitempty"`
		At      int64  `json:"at"`
	}
)

// ms is t in Unix milliseconds, 0 for the zero time; fromMS is its inverse.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// nullMS is t in Unix milliseconds, or NULL for the zero time.
func nullMS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// row is a request as the columns after id and version hold it, in the order
// of CreateRequest's and UpdateRequest's statements.
type row struct {
	taskToken, webhookURL, title, details, links, requester, approvers, policy string
	slackChannel, chatChannel, chatTS, status                                  string
	createdAt, expiresAt                                                       int64
	dChoice, dBy, dChannel, dComment, dAt                                      any
	delivered                                                                  bool
	leaseUntil                                                                 any
	recipients, doc                                                            string
	dueAt                                                                      any
}

func (w *row) values() []any {
	return []any{
		w.taskToken, w.webhookURL, w.title, w.details, w.links, w.requester, w.approvers, w.policy,
		w.slackChannel, w.chatChannel, w.chatTS, w.status, w.createdAt, w.expiresAt,
		w.dChoice, w.dBy, w.dChannel, w.dComment, w.dAt,
		w.delivered, w.leaseUntil, w.recipients, w.doc, w.dueAt,
	}
}

// encodeRequest turns r into its columns.
func encodeRequest(r *approval.Request) (*row, error) {
	links := make([]linkJSON, 0, len(r.Links))
	for _, l := range r.Links {
		links = append(links, linkJSON(l))
	}
	approvers := r.Approvers
	if approvers == nil {
		approvers = []string{}
	}
	rcs := make([]recipientJSON, 0, len(r.Recipients))
	for _, rc := range r.Recipients {
		rcs = append(rcs, recipientJSON{Address: rc.Address, Channel: string(rc.Channel), TokenHash: rc.TokenHash, PageKey: rc.PageKey, Email: rc.Email, PrevHash: rc.PrevHash})
	}
	d := docJSON{
		Rule: ruleJSON{
			Policy: string(r.Rule.Policy), RejectPolicy: string(r.Rule.RejectPolicy), AllowSelfApproval: r.Rule.AllowSelfApproval,
		},
		Recipients: rcs,
		Reason:     r.Reason,
	}
	if c := r.Canceled; c != nil {
		d.Canceled = &cancelJSON{By: c.By, Reason: c.Reason, At: ms(c.At)}
	}
	d.lifecycleJSON = encodeLifecycle(r)
	for _, g := range r.Rule.Groups {
		d.Rule.Groups = append(d.Rule.Groups, groupJSON{Name: g.Name, Approvers: g.Approvers, Min: g.Min})
	}
	for _, v := range r.Votes {
		d.Votes = append(d.Votes, voteJSON{
			By: v.By, Email: v.Email, Channel: string(v.Channel), Choice: string(v.Choice), Comment: v.Comment,
			At: ms(v.At), Groups: v.Groups,
		})
	}
	for _, e := range r.Effects {
		d.Effects = append(d.Effects, effectJSON{
			Kind: string(e.Kind), Target: e.Target, State: string(e.State), Attempts: e.Attempts, Lease: e.Lease,
			LeaseUntil: ms(e.LeaseUntil), NextAt: ms(e.NextAt), Error: e.Error, At: ms(e.At),
		})
	}
	for _, m := range r.DirectMessages {
		d.DirectMessages = append(d.DirectMessages, chatJSON(m))
	}
	for _, e := range r.Audit {
		b, err := e.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("encode request: audit: %w", err)
		}
		d.Audit = append(d.Audit, string(b))
	}
	w := &row{
		taskToken: r.TaskToken, webhookURL: r.WebhookURL, title: r.Title, details: r.Details, requester: r.Requester,
		policy: string(r.Rule.Policy), slackChannel: r.SlackChannel, chatChannel: r.ChatMessage.Channel, chatTS: r.ChatMessage.TS,
		status: string(r.Status), createdAt: r.CreatedAt.UnixMilli(), expiresAt: r.ExpiresAt.UnixMilli(),
		delivered: r.Delivered(),
		dueAt:     dueAt(r),
	}
	if dc := r.Decision; dc != nil {
		d.Decision = &decisionJSON{Choice: string(dc.Choice), By: dc.By, Channel: string(dc.Channel), Comment: dc.Comment, At: ms(dc.At)}
		w.dChoice, w.dBy, w.dChannel, w.dComment, w.dAt = string(dc.Choice), dc.By, string(dc.Channel), dc.Comment, dc.At.UnixMilli()
	}
	for _, e := range r.Effects {
		if e.Kind == approval.EffectDeliver && e.State == approval.EffectPending {
			w.leaseUntil = nullMS(e.LeaseUntil)
		}
	}
	for _, f := range []struct {
		dst *string
		v   any
	}{{&w.links, links}, {&w.approvers, approvers}, {&w.recipients, rcs}, {&w.doc, d}} {
		b, err := json.Marshal(f.v)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		*f.dst = string(b)
	}
	return w, nil
}

// dueAt is the value of the due_at column: r.DueAt in Unix milliseconds, or
// NULL when nothing is due. An unfinished effect that was never leased (a
// first-version outcome not yet delivered) is due at once: at the request's
// creation.
func dueAt(r *approval.Request) any {
	at := r.DueAt()
	for _, e := range r.Effects {
		if e.State == approval.EffectPending && e.LeaseUntil.IsZero() && e.NextAt.IsZero() {
			at = r.CreatedAt
		}
	}
	return nullMS(at)
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// scanRequest reads one row of requestColumns.
func scanRequest(sc scanner) (*approval.Request, error) {
	var (
		r                                approval.Request
		links, approvers, rcs            string
		status                           string
		created, expires                 int64
		dChoice, dBy, dChannel, dComment sql.NullString
		dAt, leaseUntil                  sql.NullInt64
		delivered                        bool
		doc                              sql.NullString
	)
	err := sc.Scan(&r.ID, &r.Version, &r.TaskToken, &r.WebhookURL, &r.Title, &r.Details, &links, &r.Requester, &approvers,
		&r.SlackChannel, &r.ChatMessage.Channel, &r.ChatMessage.TS, &status, &created, &expires,
		&dChoice, &dBy, &dChannel, &dComment, &dAt, &delivered, &leaseUntil, &rcs, &doc)
	if err != nil {
		return nil, err
	}
	r.Status = approval.Status(status)
	r.CreatedAt, r.ExpiresAt = time.UnixMilli(created).UTC(), time.UnixMilli(expires).UTC()
	var ls []linkJSON
	if err := json.Unmarshal([]byte(links), &ls); err != nil {
		return nil, fmt.Errorf("request %s: links: %w", r.ID, err)
	}
	for _, l := range ls {
		r.Links = append(r.Links, approval.Link(l))
	}
	if err := json.Unmarshal([]byte(approvers), &r.Approvers); err != nil {
		return nil, fmt.Errorf("request %s: approvers: %w", r.ID, err)
	}
	if doc.Valid {
		var d docJSON
		if err := json.Unmarshal([]byte(doc.String), &d); err != nil {
			return nil, fmt.Errorf("request %s: doc: %w", r.ID, err)
		}
		if err := decodeDoc(&r, &d); err != nil {
			return nil, fmt.Errorf("request %s: %w", r.ID, err)
		}
		return &r, nil
	}

	// A row of the first version.
	var rs []recipientJSON
	if err := json.Unmarshal([]byte(rcs), &rs); err != nil {
		return nil, fmt.Errorf("request %s: recipients: %w", r.ID, err)
	}
	d := docJSON{Recipients: rs}
	if dChoice.Valid {
		d.Decision = &decisionJSON{Choice: dChoice.String, By: dBy.String, Channel: dChannel.String, Comment: dComment.String, At: dAt.Int64}
	}
	if err := decodeDoc(&r, &d); err != nil {
		return nil, fmt.Errorf("request %s: %w", r.ID, err)
	}
	legacy(&r, delivered, fromMS(leaseUntil.Int64))
	return &r, nil
}

// legacy completes a request of the first version, read from its old
// columns, with what version 2 keeps in doc.
func legacy(r *approval.Request, delivered bool, leaseUntil time.Time) {
	// The first version knew only "any": the first answer decides.
	r.Rule = approval.Rule{Policy: approval.PolicyAny, RejectPolicy: approval.RejectAny}
	if d := r.Decision; d != nil {
		// The answer that decided was the request's one vote.
		r.Votes = []approval.Vote{{By: d.By, Channel: d.Channel, Choice: d.Choice, Comment: d.Comment, At: d.At}}
	}
	if r.Status != approval.StatusPending && !delivered {
		// An outcome never delivered: a delivery that its first attempt
		// (perhaps still leased) did not see through, for the sweep to take
		// over.
		r.Effects = []approval.Effect{{
			Kind: approval.EffectDeliver, State: approval.EffectPending, Attempts: 1, LeaseUntil: leaseUntil,
		}}
	}
}

// decodeDoc sets the v2 parts of r from d.
func decodeDoc(r *approval.Request, d *docJSON) error {
	r.Rule = approval.Rule{
		Policy: approval.Policy(d.Rule.Policy), RejectPolicy: approval.RejectPolicy(d.Rule.RejectPolicy),
		AllowSelfApproval: d.Rule.AllowSelfApproval,
	}
	for _, g := range d.Rule.Groups {
		r.Rule.Groups = append(r.Rule.Groups, approval.Group{Name: g.Name, Approvers: g.Approvers, Min: g.Min})
	}
	for _, v := range d.Votes {
		r.Votes = append(r.Votes, approval.Vote{
			By: v.By, Email: v.Email, Channel: approval.Channel(v.Channel), Choice: approval.Choice(v.Choice),
			Comment: v.Comment, At: fromMS(v.At), Groups: v.Groups,
		})
	}
	for _, rc := range d.Recipients {
		r.Recipients = append(r.Recipients, approval.Recipient{
			Address: rc.Address, Channel: approval.Channel(rc.Channel), TokenHash: rc.TokenHash, PageKey: rc.PageKey, Email: rc.Email,
			PrevHash: rc.PrevHash,
		})
	}
	decodeLifecycle(r, &d.lifecycleJSON)
	for _, e := range d.Effects {
		r.Effects = append(r.Effects, approval.Effect{
			Kind: approval.EffectKind(e.Kind), Target: e.Target, State: approval.EffectState(e.State), Attempts: e.Attempts,
			Lease: e.Lease, LeaseUntil: fromMS(e.LeaseUntil), NextAt: fromMS(e.NextAt), Error: e.Error, At: fromMS(e.At),
		})
	}
	for _, m := range d.DirectMessages {
		r.DirectMessages = append(r.DirectMessages, approval.ChatMessage(m))
	}
	r.Reason = d.Reason
	if c := d.Canceled; c != nil {
		r.Canceled = &approval.Cancellation{By: c.By, Reason: c.Reason, At: fromMS(c.At)}
	}
	if dc := d.Decision; dc != nil {
		r.Decision = &approval.Decision{
			Choice: approval.Choice(dc.Choice), By: dc.By, Channel: approval.Channel(dc.Channel), Comment: dc.Comment,
			At: fromMS(dc.At),
		}
	}
	for _, line := range d.Audit {
		e, err := approval.ParseAuditEntry([]byte(line))
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		r.Audit = append(r.Audit, e)
	}
	return nil
}
