package approval

import (
	"errors"
	"fmt"
)

// Sentinel errors of the core. Adapters translate their own failures into these so
// that callers can match them with errors.Is.
var (
	// ErrNotFound: no such request, token or page.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyDecided: the request was decided before this attempt.
	ErrAlreadyDecided = errors.New("already decided")
	// ErrExpired: the request or token is past its expiry, or was closed as expired.
	ErrExpired = errors.New("expired")
	// ErrConflict: the item already exists, or is not in the state the operation needs.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input is not acceptable; the error is a *ValidationError.
	ErrInvalid = errors.New("invalid input")
	// ErrWorkflowGone: the workflow waiting for the decision no longer exists
	// (timed out, stopped, or the task token is not valid).
	ErrWorkflowGone = errors.New("workflow no longer waiting")
	// ErrForbidden: the caller may not act on this request.
	ErrForbidden = errors.New("forbidden")
)

// ValidationError says which input field is wrong and why, in a sentence a user
// can read. It matches ErrInvalid.
type ValidationError struct {
	Field   string
	Message string
}

// Invalidf returns a *ValidationError for field with a formatted message.
func Invalidf(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

func (e *ValidationError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrInvalid) true for validation errors.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Errors of a vote that is refused. Each comes with the request, so that the
// caller can say why.
var (
	// ErrAlreadyVoted: the person has voted on this request already, through
	// this channel or another.
	ErrAlreadyVoted = errors.New("already voted")
	// ErrSelfApproval: the requester may not approve their own request.
	ErrSelfApproval = fmt.Errorf("%w: the requester may not approve their own request", ErrForbidden)
	// ErrNotApprover: the person is not one of the request's approvers.
	ErrNotApprover = fmt.Errorf("%w: not an approver of this request", ErrForbidden)
)
