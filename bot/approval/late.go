package approval

import (
	"context"
	"errors"
	"fmt"
)

// Late visitors: someone opens the one-time page of a request after it
// closed (or after they voted). Nothing on what they then see can decide
// anything or holds a token; it says what happened, for as long as the
// request is kept.

// ErrPageGone: the one-time page was taken down (its request closed, or its
// holder voted) while its request is still kept. The error is a
// *PageGoneError naming the request.
var ErrPageGone = errors.New("page taken down")

// PageGoneError says which request a page that was taken down belonged to.
// It matches ErrPageGone and ErrNotFound (the page itself is no more).
type PageGoneError struct {
	RequestID string
}

func (e *PageGoneError) Error() string {
	return fmt.Sprintf("the page of request %s was taken down", e.RequestID)
}

// Is makes errors.Is match ErrPageGone and ErrNotFound.
func (e *PageGoneError) Is(target error) bool { return target == ErrPageGone || target == ErrNotFound }

// Retirer is implemented by Pages that, instead of deleting a page, can put
// in its place a page saying what happened (a static host that cannot look
// the request up when the page is opened, such as S3). Retire replaces the
// pages under keys with html.
type Retirer interface {
	Retire(ctx context.Context, keys []string, html []byte) error
}

// LateRenderer is implemented by Renderers that render the page a late
// visitor sees: the request as it stands (its outcome, who decided and when,
// its votes), with no token, no form and no script.
type LateRenderer interface {
	Late(r *Request) ([]byte, error)
}

// removePages takes down the pages of r under keys: it replaces them with
// the page that says what happened when Pages can retire pages and the
// Renderer can render that page, and deletes them otherwise.
func (s *Service) removePages(ctx context.Context, r *Request, keys []string) error {
	ret, ok := s.Pages.(Retirer)
	lr, lok := s.Renderer.(LateRenderer)
	if !ok || !lok {
		return s.Pages.Delete(ctx, keys)
	}
	html, err := lr.Late(r)
	if err != nil {
		return fmt.Errorf("render the page of a late visitor: %w", err)
	}
	return ret.Retire(ctx, keys, html)
}
