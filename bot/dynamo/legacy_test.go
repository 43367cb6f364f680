package dynamo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/approval"
	"approvalbot/bot/approval/storetest"
	"approvalbot/bot/dynamo"
)

// Attribute values as the first version's items hold them.
func avS(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func avN(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
func avB(b bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: b} }
func avL(vs ...types.AttributeValue) types.AttributeValue {
	return &types.AttributeValueMemberL{Value: vs}
}
func avM(m map[string]types.AttributeValue) types.AttributeValue {
	return &types.AttributeValueMemberM{Value: m}
}

// v1Time is the first version's stored time format.
func v1Time(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }

// v1Recipient is one recipient as the first version stored it.
type v1Recipient struct {
	address, channel, raw, pageKey string
}

// v1Request is a request as the first version stored it: CreateRequest wrote
// every field (delivered false, pendingPK "PENDING") and a token item per
// recipient; Claim then set the status and decision, moved the request from
// pendingPK to undeliveredPK "UNDELIVERED" and set the token's usedAt;
// LeaseDelivery set deliveryLeaseUntil; MarkDelivered set delivered and
// removed undeliveredPK.
type v1Request struct {
	id, taskToken, slackChannel, chatTS string
	approvers                           []string
	recipients                          []v1Recipient
	createdAt, expiresAt                time.Time
	status                              string
	decision                            *approval.Decision
	delivered                           bool
	leaseUntil                          time.Time
}

const v1Retention = 90 * 24 * time.Hour

func (v v1Request) items() []map[string]types.AttributeValue {
	ttl := avN(v.expiresAt.Add(v1Retention).Unix())
	var approvers, recipients []types.AttributeValue
	for _, a := range v.approvers {
		approvers = append(approvers, avS(a))
	}
	var tokens []map[string]types.AttributeValue
	for _, rc := range v.recipients {
		hash := approval.HashToken(rc.raw)
		recipients = append(recipients, avM(map[string]types.AttributeValue{
			"address": avS(rc.address), "channel": avS(rc.channel), "tokenHash": avS(hash), "pageKey": avS(rc.pageKey),
		}))
		tok := map[string]types.AttributeValue{
			"pk": avS("TOK#" + hash), "kind": avS("token"), "requestId": avS(v.id), "recipient": avS(rc.address),
			"channel": avS(rc.channel), "pageKey": avS(rc.pageKey), "expiresAt": avS(v1Time(v.expiresAt)), "ttl": ttl,
		}
		if v.decision != nil {
			tok["usedAt"] = avS(v1Time(v.decision.At))
		}
		tokens = append(tokens, tok)
	}
	req := map[string]types.AttributeValue{
		"pk":         avS("REQ#" + v.id),
		"kind":       avS("request"),
		"id":         avS(v.id),
		"title":      avS("Deploy " + v.id + " (first version)"),
		"details":    avS("written before version 2"),
		"links":      avL(avM(map[string]types.AttributeValue{"label": avS("Diff"), "url": avS("https://git.example.com/diff/1")})),
		"requester":  avS("ci@example.com"),
		"approvers":  avL(approvers...),
		"policy":     avS("any"),
		"recipients": avL(recipients...),
		"status":     avS(v.status),
		"createdAt":  avS(v1Time(v.createdAt)),
		"expiresAt":  avS(v1Time(v.expiresAt)),
		"delivered":  avB(v.delivered),
		"ttl":        ttl,
	}
	if v.taskToken != "" {
		req["taskToken"] = avS(v.taskToken)
	}
	if v.slackChannel != "" {
		req["slackChannel"] = avS(v.slackChannel)
		req["chatChannel"] = avS(v.slackChannel)
		req["chatTS"] = avS(v.chatTS)
	}
	switch {
	case v.status == "pending":
		req["pendingPK"] = avS("PENDING")
	case !v.delivered:
		req["undeliveredPK"] = avS("UNDELIVERED")
	}
	if d := v.decision; d != nil {
		req["decisionChoice"] = avS(string(d.Choice))
		req["decidedBy"] = avS(d.By)
		req["decisionChannel"] = avS(string(d.Channel))
		req["decidedAt"] = avS(v1Time(d.At))
		if d.Comment != "" {
			req["decisionComment"] = avS(d.Comment)
		}
	}
	if !v.leaseUntil.IsZero() {
		req["deliveryLeaseUntil"] = avS(v1Time(v.leaseUntil))
	}
	return append([]map[string]types.AttributeValue{req}, tokens...)
}

// legacyPages and legacyRenderer are the least a service needs.
type legacyPages struct {
	mu      sync.Mutex
	deleted []string
}

func (p *legacyPages) Put(context.Context, string, []byte) error { return nil }
func (p *legacyPages) Delete(_ context.Context, keys []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deleted = append(p.deleted, keys...)
	return nil
}
func (p *legacyPages) URL(key string) string { return "https://pages.example.com/p/" + key }

type legacyRenderer struct{}

func (legacyRenderer) Page(approval.PageView) ([]byte, error) { return []byte("page"), nil }
func (legacyRenderer) Email(v approval.EmailView) (approval.Email, error) {
	return approval.Email{To: v.Recipient.Address, Subject: v.Request.Title, Text: v.PageURL}, nil
}

// legacyWorkflow records the outcomes it receives; for the IDs in gone it
// answers that nothing waits any more, as Step Functions does to a second
// SendTaskSuccess.
type legacyWorkflow struct {
	mu   sync.Mutex
	got  map[string][]approval.Status
	gone map[string]bool
}

func (w *legacyWorkflow) Deliver(_ context.Context, r *approval.Request) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got[r.ID] = append(w.got[r.ID], r.Status)
	if w.gone[r.ID] {
		return approval.ErrWorkflowGone
	}
	return nil
}

// TestFirstVersionItems writes items exactly as the first version did and
// checks that they keep working: they decode, are listed, their raw tokens
// vote, the sweep expires them or delivers their outcome, and every write
// turns them into items of the current form.
func TestFirstVersionItems(t *testing.T) {
	ctx := t.Context()
	client, table := newTable(t)
	st := dynamo.New(client, table)
	base := storetest.Base
	at := func(d time.Duration) time.Time { return base.Add(d) }

	aliceRaw, _ := approval.NewToken()
	channelRaw, _ := approval.NewToken()
	slackRaw, _ := approval.NewToken()
	bobRaw, _ := approval.NewToken()
	carolRaw, _ := approval.NewToken()
	daveRaw, _ := approval.NewToken()
	pending := v1Request{ // voted on with alice's old link
		id: approval.NewID(), taskToken: "legacy-task-pending", slackChannel: "C0LEGACY1", chatTS: "1700000000.000100",
		approvers: []string{"alice@example.com"},
		recipients: []v1Recipient{
			{"alice@example.com", "email", aliceRaw, approval.NewPageKey()},
			{"C0LEGACY1", "slack", channelRaw, approval.NewPageKey()},
		},
		createdAt: at(-10 * time.Minute), expiresAt: at(time.Hour), status: "pending",
	}
	slack := v1Request{ // voted on with the channel's old link
		id: approval.NewID(), taskToken: "legacy-task-slack", slackChannel: "C0LEGACY2", chatTS: "1700000000.000200",
		approvers:  []string{"U0LEGACY01"},
		recipients: []v1Recipient{{"C0LEGACY2", "slack", slackRaw, approval.NewPageKey()}},
		createdAt:  at(-20 * time.Minute), expiresAt: at(time.Hour), status: "pending",
	}
	undelivered := v1Request{ // approved, its delivery leased and never marked done
		id: approval.NewID(), taskToken: "legacy-task-undelivered",
		approvers:  []string{"bob@example.com"},
		recipients: []v1Recipient{{"bob@example.com", "email", bobRaw, approval.NewPageKey()}},
		createdAt:  at(-30 * time.Minute), expiresAt: at(30 * time.Minute), status: "approved",
		decision:   &approval.Decision{Choice: approval.Approve, By: "bob@example.com", Channel: approval.ChannelEmail, Comment: "lgtm", At: at(-5 * time.Minute)},
		leaseUntil: at(-4 * time.Minute),
	}
	expired := v1Request{ // pending past its expiry: nothing closed it
		id: approval.NewID(), taskToken: "legacy-task-expired",
		approvers:  []string{"carol@example.com"},
		recipients: []v1Recipient{{"carol@example.com", "email", carolRaw, approval.NewPageKey()}},
		createdAt:  at(-3 * time.Hour), expiresAt: at(-2 * time.Hour), status: "pending",
	}
	expiredUndelivered := v1Request{ // closed as expired, its delivery never leased
		id: approval.NewID(), taskToken: "legacy-task-expired-undelivered",
		approvers:  []string{"frank@example.com"},
		recipients: []v1Recipient{{"frank@example.com", "email", approval.NewPageKey(), approval.NewPageKey()}},
		createdAt:  at(-2 * time.Hour), expiresAt: at(-time.Hour), status: "expired",
	}
	delivered := v1Request{ // done with: in no list
		id: approval.NewID(), taskToken: "legacy-task-delivered",
		approvers:  []string{"dave@example.com"},
		recipients: []v1Recipient{{"dave@example.com", "email", daveRaw, approval.NewPageKey()}},
		createdAt:  at(-40 * time.Minute), expiresAt: at(20 * time.Minute), status: "rejected",
		decision:  &approval.Decision{Choice: approval.Reject, By: "dave@example.com", Channel: approval.ChannelEmail, At: at(-35 * time.Minute)},
		delivered: true,
	}
	for _, v := range []v1Request{pending, slack, undelivered, expired, expiredUndelivered, delivered} {
		for _, item := range v.items() {
			if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
				t.Fatalf("PutItem: %v", err)
			}
		}
	}
	// A request of the current version beside them.
	current := &approval.Request{
		ID: approval.NewID(), Title: "current", Requester: "ci@example.com", Approvers: []string{"erin@example.com"},
		Rule:   approval.Rule{Policy: approval.PolicyAny, RejectPolicy: approval.RejectAny},
		Status: approval.StatusPending, CreatedAt: base, ExpiresAt: at(time.Hour),
	}
	mustCreate(t, st, current)

	// They decode into the request they stand for.
	want := &approval.Request{
		ID: pending.id, TaskToken: pending.taskToken, Title: "Deploy " + pending.id + " (first version)",
		Details: "written before version 2", Links: []approval.Link{{Label: "Diff", URL: "https://git.example.com/diff/1"}},
		Requester: "ci@example.com", Approvers: []string{"alice@example.com"},
		Rule:         approval.Rule{Policy: approval.PolicyAny, RejectPolicy: approval.RejectAny},
		SlackChannel: "C0LEGACY1", ChatMessage: approval.ChatMessage{Channel: "C0LEGACY1", TS: "1700000000.000100"},
		Status: approval.StatusPending, CreatedAt: pending.createdAt, ExpiresAt: pending.expiresAt,
		Recipients: []approval.Recipient{
			{Address: "alice@example.com", Channel: approval.ChannelEmail, TokenHash: approval.HashToken(aliceRaw), PageKey: pending.recipients[0].pageKey},
			{Address: "C0LEGACY1", Channel: approval.ChannelSlack, TokenHash: approval.HashToken(channelRaw), PageKey: pending.recipients[1].pageKey},
		},
	}
	got, err := st.GetRequest(ctx, pending.id)
	if err != nil {
		t.Fatalf("GetRequest of the first version's pending request: %v", err)
	}
	if diff := cmp.Diff(want, got, storetest.CmpOptions); diff != "" {
		t.Errorf("first version's pending request (-want +got):\n%s", diff)
	}
	got, err = st.GetRequest(ctx, undelivered.id)
	if err != nil {
		t.Fatalf("GetRequest of the first version's undelivered request: %v", err)
	}
	d := undelivered.decision
	wantVotes := []approval.Vote{{By: d.By, Channel: d.Channel, Choice: d.Choice, Comment: d.Comment, At: d.At}}
	wantEffects := []approval.Effect{{Kind: approval.EffectDeliver, State: approval.EffectPending, Attempts: 1, LeaseUntil: undelivered.leaseUntil}}
	if got.Version != 0 || got.Status != approval.StatusApproved || !cmp.Equal(got.Decision, d, storetest.CmpOptions) ||
		!cmp.Equal(got.Votes, wantVotes, storetest.CmpOptions) || !cmp.Equal(got.Effects, wantEffects, storetest.CmpOptions) || got.Delivered() {
		t.Errorf("first version's undelivered request: version %d, %s, decision %+v, votes %+v, effects %+v, delivered %v;\n"+
			"want version 0, approved, decision %+v, votes %+v, effects %+v, not delivered",
			got.Version, got.Status, got.Decision, got.Votes, got.Effects, got.Delivered(), d, wantVotes, wantEffects)
	}
	got, err = st.GetRequest(ctx, expiredUndelivered.id)
	wantEffects = []approval.Effect{{Kind: approval.EffectDeliver, State: approval.EffectPending, Attempts: 1, LeaseUntil: expiredUndelivered.expiresAt}}
	if err != nil || !cmp.Equal(got.Effects, wantEffects, storetest.CmpOptions) {
		t.Errorf("first version's expired, undelivered request: effects %+v, %v; want %+v (due since it closed)", got.Effects, err, wantEffects)
	}
	got, err = st.GetRequest(ctx, delivered.id)
	if err != nil || !got.Delivered() || len(got.Effects) != 0 {
		t.Errorf("first version's delivered request: %+v, %v; want delivered, no effects", got, err)
	}
	if id, err := st.LegacyToken(ctx, approval.HashToken(aliceRaw)); err != nil || id != pending.id {
		t.Errorf("LegacyToken of alice's old link: %q, %v; want %q", id, err, pending.id)
	}

	// Listed beside the current version's requests, newest first, in pages.
	var listed []string
	cursor := ""
	for range 5 {
		rs, next, err := st.ListPending(ctx, cursor, 2)
		if err != nil {
			t.Fatalf("ListPending: %v", err)
		}
		listed = append(listed, ids(rs)...)
		if cursor = next; next == "" {
			break
		}
	}
	if diff := cmp.Diff([]string{current.ID, pending.id, slack.id, expired.id}, listed); diff != "" {
		t.Errorf("ListPending (-want +got):\n%s", diff)
	}
	due, err := st.ListDue(ctx, base, 10)
	if err != nil {
		t.Fatalf("ListDue: %v", err)
	}
	if diff := cmp.Diff([]string{expired.id, expiredUndelivered.id, undelivered.id}, ids(due)); diff != "" {
		t.Errorf("ListDue: by due time, the expired requests, then the undelivered one (-want +got):\n%s", diff)
	}

	// Votes with the old raw tokens, then the sweep.
	pages := &legacyPages{}
	wf := &legacyWorkflow{got: map[string][]approval.Status{}, gone: map[string]bool{undelivered.id: true}}
	svc := &approval.Service{
		Store: st, Pages: pages, Renderer: legacyRenderer{}, Workflow: wf,
		DecideURL: "https://cb.example.com/decide", Now: func() time.Time { return base }, Sync: true,
	}
	r, err := svc.Decide(ctx, approval.DecideInput{Token: aliceRaw, Choice: approval.Approve, Comment: "ok"})
	if err != nil || r.Status != approval.StatusApproved || r.Decision == nil || r.Decision.By != "alice@example.com" {
		t.Fatalf("vote with alice's old link: %+v, %v; want approved by alice@example.com", r, err)
	}
	r, err = svc.Decide(ctx, approval.DecideInput{Token: slackRaw, Choice: approval.Reject})
	if err != nil || r.Status != approval.StatusRejected || r.Decision == nil || r.Decision.By != "Slack channel C0LEGACY2" {
		t.Fatalf("vote with the channel's old link: %+v, %v; want rejected by Slack channel C0LEGACY2", r, err)
	}
	stats, err := svc.Sweep(ctx)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if err := svc.Idle(ctx); err != nil {
		t.Fatal(err)
	}
	if stats.Expired != 1 || stats.Left != 0 {
		t.Errorf("sweep: %+v; want 1 expired and nothing left undelivered", stats)
	}
	wantDelivered := map[string][]approval.Status{
		pending.id:            {approval.StatusApproved},
		slack.id:              {approval.StatusRejected},
		undelivered.id:        {approval.StatusApproved},
		expired.id:            {approval.StatusExpired},
		expiredUndelivered.id: {approval.StatusExpired},
	}
	if diff := cmp.Diff(wantDelivered, wf.got); diff != "" {
		t.Errorf("outcomes delivered to the workflows (-want +got):\n%s", diff)
	}
	wantStatus := map[string]approval.Status{
		pending.id: approval.StatusApproved, slack.id: approval.StatusRejected,
		// The old lease's attempt reached the workflow: the decision stands.
		undelivered.id:        approval.StatusApproved,
		expired.id:            approval.StatusExpired,
		expiredUndelivered.id: approval.StatusExpired,
	}
	for id, status := range wantStatus {
		r, err := st.GetRequest(ctx, id)
		if err != nil || r.Status != status || !r.Delivered() {
			t.Errorf("%s after the sweep: %v, %v; want %s, delivered", id, r.Status, err, status)
		}
	}
	for _, key := range []string{pending.recipients[0].pageKey, pending.recipients[1].pageKey, slack.recipients[0].pageKey, expired.recipients[0].pageKey} {
		if !slices.Contains(pages.deleted, key) {
			t.Errorf("page %s of a closed request not deleted", key)
		}
	}

	// Every request written since is in the current form, out of the first
	// version's partitions; the delivered one was left alone.
	all := items(t, client, table)
	for id := range wantStatus {
		it := all["REQ#"+id]
		if attrN(it, dynamo.VersionAttribute) == "" {
			t.Errorf("%s: no version after being written", id)
		}
		for _, name := range append(firstVersionAttributes, dynamo.PendingKeyAttribute, dynamo.DueKeyAttribute) {
			if _, ok := it[name]; ok {
				t.Errorf("%s: %s still present after being written", id, name)
			}
		}
		if v, _ := attrS(it, dynamo.UndeliveredKeyAttribute); wantStatus[id] != approval.StatusPending && v != fmt.Sprintf("CLOSED#%d", dynamo.ShardOf(id)) {
			t.Errorf("%s: undeliveredPK = %q after being closed, want CLOSED#%d", id, v, dynamo.ShardOf(id))
		}
	}
	if _, ok := all["REQ#"+delivered.id]["delivered"]; !ok {
		t.Errorf("the delivered request was written; nothing was due on it")
	}
	if got := queryPartitions(t, client, table, dynamo.PendingIndex, dynamo.PendingKeyAttribute, "PENDING"); len(got) != 0 {
		t.Errorf("the first version's pending partition still holds %v", got)
	}
	if got := queryPartitions(t, client, table, dynamo.UndeliveredIndex, dynamo.UndeliveredKeyAttribute, "UNDELIVERED"); len(got) != 0 {
		t.Errorf("the first version's undelivered partition still holds %v", got)
	}
	rs, _, err := st.ListPending(ctx, "", 10)
	if err != nil || !slices.Equal(ids(rs), []string{current.ID}) {
		t.Errorf("ListPending after: %v, %v; want only %s", ids(rs), err, current.ID)
	}
	if due, err := st.ListDue(ctx, base, 10); err != nil || len(due) != 0 {
		t.Errorf("ListDue after: %v, %v; want nothing", ids(due), err)
	}
}

// An item of a pending quorum request as the previous version wrote it holds
// no quick-vote sets (it kept them for policy any only): the vote that meets
// the rule then takes the general path, and still closes the request once,
// with both votes, the outcome delivered. Its write adds the sets.
func TestQuorumItemWithoutQuickSets(t *testing.T) {
	ctx := t.Context()
	client, table := newTable(t)
	st := dynamo.New(client, table)
	base := storetest.Base
	r := &approval.Request{
		ID: approval.NewID(), TaskToken: "task-quorum", Title: "Deploy v3", Requester: "ci@example.com",
		Approvers: []string{"alice@example.com", "bob@example.com", "carol@example.com"},
		Rule:      approval.Rule{Policy: approval.PolicyQuorum(2), RejectPolicy: approval.RejectAny},
		Status:    approval.StatusPending, CreatedAt: base, ExpiresAt: base.Add(time.Hour),
		Votes: []approval.Vote{{By: "alice@example.com", Channel: approval.ChannelEmail, Choice: approval.Approve, At: base.Add(time.Minute)}},
	}
	tokens := map[string]string{}
	for _, a := range r.Approvers {
		tokens[a] = approval.NewRequestToken(r.ID)
		r.Recipients = append(r.Recipients, approval.Recipient{Address: a, Channel: approval.ChannelEmail, TokenHash: approval.HashToken(tokens[a]), PageKey: approval.NewPageKey()})
	}
	if err := st.CreateRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	key := map[string]types.AttributeValue{dynamo.KeyAttribute: avS("REQ#" + r.ID)}
	if _, err := client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(table), Key: key, UpdateExpression: aws.String("REMOVE quickApprove, quickReject"),
	}); err != nil {
		t.Fatal(err)
	}

	wf := &legacyWorkflow{got: map[string][]approval.Status{}, gone: map[string]bool{}}
	svc := &approval.Service{
		Store: st, Pages: &legacyPages{}, Renderer: legacyRenderer{}, Workflow: wf,
		DecideURL: "https://cb.example.com/decide", Now: func() time.Time { return base.Add(2 * time.Minute) }, Sync: true,
	}
	got, err := svc.Decide(ctx, approval.DecideInput{Token: tokens["bob@example.com"], Choice: approval.Approve})
	if err != nil || got.Status != approval.StatusApproved || len(got.Votes) != 2 || got.Decision.By != "bob@example.com" {
		t.Fatalf("bob's vote: %+v, %v; want approved by bob, after alice", got, err)
	}
	if diff := cmp.Diff([]approval.Status{approval.StatusApproved}, wf.got[r.ID]); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
	stored, err := st.GetRequest(ctx, r.ID)
	if err != nil || stored.Status != approval.StatusApproved || len(stored.Votes) != 2 || !stored.Delivered() {
		t.Errorf("stored: %+v, %v; want approved with both votes, delivered", stored, err)
	}
	if _, err := svc.Decide(ctx, approval.DecideInput{Token: tokens["carol@example.com"], Choice: approval.Reject}); !errors.Is(err, approval.ErrAlreadyDecided) {
		t.Errorf("carol's vote after the close: %v, want ErrAlreadyDecided", err)
	}
}
