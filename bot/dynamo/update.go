package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"approvalbot/bot/approval"
)

// Claim uses the token stored under hash to record d on its request. It is one
// transaction of two conditional updates: the token (exists, unused, expiresAt
// after d.At) gets usedAt; the request (pending, expiresAt after d.At) gets
// its status and decision and leaves the pending index for the undelivered
// one. When the transaction is cancelled, consistent reads of both items tell
// which error to return: ErrNotFound, ErrAlreadyDecided or ErrExpired.
func (s *Store) Claim(ctx context.Context, hash string, d approval.Decision) (*approval.Request, error) {
	tok, err := s.getToken(ctx, hash)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	for attempt := 1; ; attempt++ {
		// A fresh input per attempt: the SDK gives each one its own client
		// request token, which its own retries of that attempt reuse.
		_, err := s.db.TransactWriteItems(ctx, s.claimInput(hash, tok.RequestID, d))
		if err == nil {
			break
		}
		var tc *types.TransactionCanceledException
		if !errors.As(err, &tc) {
			return nil, fmt.Errorf("claim request %s: %w", tok.RequestID, err)
		}
		if why := s.whyNotClaimed(ctx, hash, tok.RequestID, d.At); why != nil {
			return nil, fmt.Errorf("claim request %s: %w", tok.RequestID, why)
		}
		// Nothing explains the cancellation: another transaction was writing
		// the same items. Try again; the next attempt sees its outcome.
		if !transactionConflict(err) || attempt == maxAttempts {
			return nil, fmt.Errorf("claim request %s: %w", tok.RequestID, err)
		}
		if err := pause(ctx, attempt); err != nil {
			return nil, fmt.Errorf("claim request %s: %w", tok.RequestID, err)
		}
	}
	r, err := s.getRequest(ctx, tok.RequestID)
	if err != nil {
		return nil, fmt.Errorf("claim request %s: read back: %w", tok.RequestID, err)
	}
	return r, nil
}

func (s *Store) claimInput(hash, requestID string, d approval.Decision) *dynamodb.TransactWriteItemsInput {
	now := str(formatTime(d.At))
	tokenUpdate := &types.Update{
		TableName:                &s.table,
		Key:                      keyOf(tokenKey(hash)),
		UpdateExpression:         aws.String("SET usedAt = :now"),
		ConditionExpression:      aws.String("attribute_exists(#pk) AND attribute_not_exists(usedAt) AND expiresAt > :now"),
		ExpressionAttributeNames: map[string]string{"#pk": KeyAttribute},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": now,
		},
	}
	set := "SET #status = :decided, delivered = :false, #undelivered = :undelivered, " +
		"decisionChoice = :choice, decidedBy = :by, decisionChannel = :channel, decidedAt = :now"
	values := map[string]types.AttributeValue{
		":now":         now,
		":pending":     str(string(approval.StatusPending)),
		":decided":     str(string(d.Choice.Status())),
		":false":       &types.AttributeValueMemberBOOL{Value: false},
		":undelivered": str(undeliveredValue),
		":choice":      str(string(d.Choice)),
		":by":          str(d.By),
		":channel":     str(string(d.Channel)),
	}
	if d.Comment != "" {
		set += ", decisionComment = :comment"
		values[":comment"] = str(d.Comment)
	}
	requestUpdate := &types.Update{
		TableName:           &s.table,
		Key:                 keyOf(requestKey(requestID)),
		UpdateExpression:    aws.String(set + " REMOVE #pending"),
		ConditionExpression: aws.String("#status = :pending AND expiresAt > :now"),
		ExpressionAttributeNames: map[string]string{
			"#status":      "status",
			"#pending":     PendingKeyAttribute,
			"#undelivered": UndeliveredKeyAttribute,
		},
		ExpressionAttributeValues: values,
	}
	return &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: tokenUpdate},
		{Update: requestUpdate},
	}}
}

// whyNotClaimed reads the token and the request after a cancelled claim and
// returns the error that explains it, or nil if both would allow the claim.
func (s *Store) whyNotClaimed(ctx context.Context, hash, requestID string, at time.Time) error {
	tok, err := s.getToken(ctx, hash)
	if err != nil {
		return err
	}
	r, err := s.getRequest(ctx, requestID)
	if err != nil {
		return err
	}
	switch {
	case r.Status.Decided():
		return approval.ErrAlreadyDecided
	case r.Status != approval.StatusPending:
		return approval.ErrExpired
	case !tok.UsedAt.IsZero():
		return approval.ErrAlreadyDecided
	case !at.Before(tok.ExpiresAt), r.ExpiredAt(at):
		return approval.ErrExpired
	}
	return nil
}

// Expire closes a pending request whose expiry is at or before now: status
// expired, out of the pending index, into the undelivered one. It returns
// ErrNotFound, ErrAlreadyDecided (no longer pending) or ErrConflict (not due).
func (s *Store) Expire(ctx context.Context, id string, now time.Time) (*approval.Request, error) {
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           &s.table,
		Key:                 keyOf(requestKey(id)),
		UpdateExpression:    aws.String("SET #status = :expired, delivered = :false, #undelivered = :undelivered REMOVE #pending"),
		ConditionExpression: aws.String("attribute_exists(#pk) AND #status = :pending AND expiresAt <= :now"),
		ExpressionAttributeNames: map[string]string{
			"#pk":          KeyAttribute,
			"#status":      "status",
			"#pending":     PendingKeyAttribute,
			"#undelivered": UndeliveredKeyAttribute,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":expired":     str(string(approval.StatusExpired)),
			":pending":     str(string(approval.StatusPending)),
			":false":       &types.AttributeValueMemberBOOL{Value: false},
			":undelivered": str(undeliveredValue),
			":now":         str(formatTime(now)),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if err != nil {
		if !conditionFailed(err) {
			return nil, fmt.Errorf("expire request %s: %w", id, err)
		}
		r, gerr := s.getRequest(ctx, id)
		switch {
		case gerr != nil:
			return nil, fmt.Errorf("expire request %s: %w", id, gerr)
		case r.Status != approval.StatusPending:
			return nil, fmt.Errorf("expire request %s: %w", id, approval.ErrAlreadyDecided)
		}
		return nil, fmt.Errorf("expire request %s: not due until %s: %w", id, r.ExpiresAt.Format(time.RFC3339), approval.ErrConflict)
	}
	return decodeRequest(out.Attributes)
}

// MarkWorkflowGone closes the request as expired and delivered, whatever its
// status, keeping any decision and ending any delivery lease. It returns
// ErrNotFound for an unknown ID.
func (s *Store) MarkWorkflowGone(ctx context.Context, id string) (*approval.Request, error) {
	out, err := s.update(ctx, id, "SET #status = :expired, delivered = :true REMOVE #pending, #undelivered, #lease",
		map[string]string{"#status": "status", "#pending": PendingKeyAttribute, "#undelivered": UndeliveredKeyAttribute, "#lease": leaseAttribute},
		map[string]types.AttributeValue{
			":expired": str(string(approval.StatusExpired)),
			":true":    &types.AttributeValueMemberBOOL{Value: true},
		})
	if err != nil {
		return nil, fmt.Errorf("mark workflow gone %s: %w", id, err)
	}
	return decodeRequest(out.Attributes)
}

// MarkDelivered records that the request's outcome reached its workflow, taking
// it out of the undelivered index and ending any delivery lease. It returns
// ErrNotFound for an unknown ID.
func (s *Store) MarkDelivered(ctx context.Context, id string) error {
	_, err := s.update(ctx, id, "SET delivered = :true REMOVE #undelivered, #lease",
		map[string]string{"#undelivered": UndeliveredKeyAttribute, "#lease": leaseAttribute},
		map[string]types.AttributeValue{":true": &types.AttributeValueMemberBOOL{Value: true}})
	if err != nil {
		return fmt.Errorf("mark delivered %s: %w", id, err)
	}
	return nil
}

// LeaseDelivery takes the delivery lease of a closed, undelivered request whose
// lease is not running at now, until until: one conditional UpdateItem that
// sets only the lease attribute, so the item stays in the undelivered index.
// When the condition fails, a consistent read tells ErrNotFound from
// ErrConflict.
func (s *Store) LeaseDelivery(ctx context.Context, id string, now, until time.Time) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        &s.table,
		Key:              keyOf(requestKey(id)),
		UpdateExpression: aws.String("SET #lease = :until"),
		ConditionExpression: aws.String("attribute_exists(#pk) AND #status <> :pending AND delivered = :false" +
			" AND (attribute_not_exists(#lease) OR #lease <= :now)"),
		ExpressionAttributeNames: map[string]string{
			"#pk":     KeyAttribute,
			"#status": "status",
			"#lease":  leaseAttribute,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pending": str(string(approval.StatusPending)),
			":false":   &types.AttributeValueMemberBOOL{Value: false},
			":now":     str(formatTime(now)),
			":until":   str(formatTime(until)),
		},
	})
	if err == nil {
		return nil
	}
	if !conditionFailed(err) {
		return fmt.Errorf("lease delivery %s: %w", id, err)
	}
	if _, gerr := s.getRequest(ctx, id); gerr != nil {
		return fmt.Errorf("lease delivery %s: %w", id, gerr)
	}
	return fmt.Errorf("lease delivery %s: pending, delivered or leased: %w", id, approval.ErrConflict)
}

// SetChatMessage records where the request's chat message was posted. It
// returns ErrNotFound for an unknown ID.
func (s *Store) SetChatMessage(ctx context.Context, id string, m approval.ChatMessage) error {
	_, err := s.update(ctx, id, "SET chatChannel = :channel, chatTS = :ts", nil,
		map[string]types.AttributeValue{":channel": str(m.Channel), ":ts": str(m.TS)})
	if err != nil {
		return fmt.Errorf("set chat message %s: %w", id, err)
	}
	return nil
}

// update applies expr to an existing request item and returns it as it then
// stands, or ErrNotFound.
func (s *Store) update(ctx context.Context, id, expr string, names map[string]string, values map[string]types.AttributeValue) (*dynamodb.UpdateItemOutput, error) {
	all := map[string]string{"#pk": KeyAttribute}
	for k, v := range names {
		all[k] = v
	}
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       keyOf(requestKey(id)),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String("attribute_exists(#pk)"),
		ExpressionAttributeNames:  all,
		ExpressionAttributeValues: values,
		ReturnValues:              types.ReturnValueAllNew,
	})
	if err != nil {
		if conditionFailed(err) {
			return nil, approval.ErrNotFound
		}
		return nil, err
	}
	return out, nil
}

func decodeRequest(item map[string]types.AttributeValue) (*approval.Request, error) {
	var it requestItem
	if err := attributevalue.UnmarshalMap(item, &it); err != nil {
		return nil, fmt.Errorf("decode request: %w", err)
	}
	return it.request()
}
