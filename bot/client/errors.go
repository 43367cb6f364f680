package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"approvalbot/bot/web"
)

// Kinds of failure, matched with errors.Is.
var (
	// ErrInvalid: the server refused the input (400, 413, 415); the *Error
	// names the field when there is one.
	ErrInvalid = errors.New("invalid input")
	// ErrNotFound: no request has this id (404).
	ErrNotFound = errors.New("not found")
	// ErrClosed: the request is no longer pending, so it cannot be canceled
	// (409 Conflict).
	ErrClosed = errors.New("request already closed")
	// ErrUnauthorized: the server wants a bearer token, or another one (401),
	// or refuses this address without one (403).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUnreachable: no answer from the server (refused connection, DNS,
	// timeout, a connection cut in the middle).
	ErrUnreachable = errors.New("server unreachable")
)

// Error is the server's refusal: the HTTP status, its sentence and, for bad
// input, the field (in the API's names: "title", "approvers",
// "timeoutSeconds"...). A StatusCode of 0 is an input this client refused
// before sending anything.
type Error struct {
	StatusCode int
	Message    string
	Field      string
}

func (e *Error) Error() string { return e.Message }

// Is matches e with the kind of failure its status says.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrInvalid:
		return e.StatusCode == 0 || e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusRequestEntityTooLarge ||
			e.StatusCode == http.StatusUnsupportedMediaType || e.StatusCode == http.StatusUnprocessableEntity
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrClosed:
		return e.StatusCode == http.StatusConflict
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	}
	return false
}

// Temporary reports whether asking again later may succeed: the server
// failed (5xx) or was busy (429).
func (e *Error) Temporary() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests
}

func errorFrom(resp *http.Response, body []byte) *Error {
	var e web.ErrorJSON
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e = web.ErrorJSON{Error: resp.Status}
	}
	return &Error{StatusCode: resp.StatusCode, Message: e.Error, Field: e.Field}
}

// unreachableError is a call that got no answer.
type unreachableError struct {
	server string
	err    error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach approvalbot at %s: %v", e.server, e.err)
}

func (e *unreachableError) Unwrap() error { return e.err }

func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }

// temporary reports whether Wait should ask again after err.
func temporary(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Temporary()
	}
	return errors.Is(err, ErrUnreachable)
}
