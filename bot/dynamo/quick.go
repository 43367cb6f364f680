package dynamo

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"approvalbot/bot/approval"
)

var _ approval.QuickVoter = (*Store)(nil)

// QuickVote records a vote that closes the request in one UpdateItem, with no
// read before it and the item as written as its answer (see
// approval.QuickVoter). Its condition is on the item's own attributes: status
// pending, expiry after the vote, and the token's hash in the set of those
// whose vote now closes it (QuickApprove or QuickReject, which every full
// write computes anew from the rule and the votes, and which the quick vote
// removes). The vote, appended to the votes, names its voter by the token's
// hash, which decoding turns into the recipient. The due time becomes the end
// of the close effects' lease (the next full write, which records them, sets
// it exactly). A refused vote answers the item as it was (ALL_OLD), which the
// caller uses as its read.
func (s *Store) QuickVote(ctx context.Context, id, tokenHash string, v approval.Vote, effects []approval.Effect) (*approval.Request, error) {
	set := "quickReject"
	if v.Choice == approval.Approve {
		set = "quickApprove"
	}
	vote, err := attributevalue.Marshal([]voteItem{{TokenHash: tokenHash, Choice: string(v.Choice), Comment: v.Comment, At: formatTime(v.At)}})
	if err != nil {
		return nil, fmt.Errorf("quick vote %s: %w", id, err)
	}
	var items []effectItem
	due := ""
	for _, e := range effects {
		items = append(items, effectItem{Kind: string(e.Kind), Target: e.Target, State: string(e.State), Attempts: e.Attempts,
			Lease: e.Lease, LeaseUntil: formatTime(e.LeaseUntil), NextAt: formatTime(e.NextAt)})
		if t := formatTime(e.LeaseUntil); due == "" || t < due {
			due = t
		}
	}
	if due == "" {
		due = formatTime(v.At)
	}
	eff, err := attributevalue.Marshal(items)
	if err != nil {
		return nil, fmt.Errorf("quick vote %s: %w", id, err)
	}
	if len(items) == 0 {
		eff = &types.AttributeValueMemberL{Value: []types.AttributeValue{}}
	}
	update := "SET #status = :status, #votes = list_append(if_not_exists(#votes, :none), :vote), decisionChoice = :choice, decidedByToken = :h, decidedAt = :at, " +
		"#effects = list_append(if_not_exists(#effects, :none), :effects), #v = if_not_exists(#v, :zero) + :one, " +
		"#dueKey = :dueKey, #dueAt = :dueAt"
	values := map[string]types.AttributeValue{
		":pending": str(string(approval.StatusPending)), ":status": str(string(v.Choice.Status())),
		":vote": vote, ":choice": str(string(v.Choice)), ":h": str(tokenHash), ":at": str(formatTime(v.At)),
		":none": &types.AttributeValueMemberL{Value: []types.AttributeValue{}}, ":effects": eff,
		":zero": num(0), ":one": num(1), ":dueKey": str(dueShard(shard(id))), ":dueAt": str(due),
	}
	if v.Comment != "" {
		update += ", decisionComment = :comment"
		values[":comment"] = str(v.Comment)
	}
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           &s.table,
		Key:                 keyOf(requestKey(id)),
		ConditionExpression: aws.String("#status = :pending AND #expiresAt > :at AND contains(#set, :h)"),
		UpdateExpression:    aws.String(update + " REMOVE #pendingKey, quickReject, quickApprove"),
		ExpressionAttributeNames: map[string]string{
			"#status": "status", "#expiresAt": "expiresAt", "#set": set, "#votes": "votes", "#effects": "effects",
			"#v": VersionAttribute, "#dueKey": DueKeyAttribute, "#dueAt": DueAtAttribute, "#pendingKey": PendingKeyAttribute,
		},
		ExpressionAttributeValues:           values,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		old, failed := conditionFailed(err)
		switch {
		case !failed:
			return nil, fmt.Errorf("quick vote %s: %w", id, err)
		case len(old) == 0:
			return nil, fmt.Errorf("quick vote %s: %w", id, approval.ErrNotFound)
		}
		r, derr := decodeRequest(old)
		if derr != nil {
			return nil, fmt.Errorf("quick vote %s: %w", id, derr)
		}
		return r, fmt.Errorf("quick vote %s: not one the request's rule closes now: %w", id, approval.ErrConflict)
	}
	r, err := decodeRequest(out.Attributes)
	if err != nil {
		return nil, fmt.Errorf("quick vote %s: %w", id, err)
	}
	if !slices.ContainsFunc(r.Votes, func(x approval.Vote) bool { return x.By != "" }) {
		return nil, fmt.Errorf("quick vote %s: the vote's token names no recipient", id)
	}
	return r, nil
}
