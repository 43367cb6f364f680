package pages

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"approvalbot/bot/approval"
)

// Late is the data of the page a late visitor sees: someone who opens the
// link of a request after it closed, or after they voted on it. It holds no
// token and no form.
type Late struct {
	Request *approval.Request
	// Vote is the visitor's own vote, when known.
	Vote *approval.Vote
}

// lateView is the data of the late visitor's page.
type lateView struct {
	Late
	Badge, Tone, Heading string
	Progress             *progressView
}

// RenderLate writes the page a late visitor sees: what happened to the
// request (who decided and when, with the comment; who withdrew it and why;
// when it expired), its rule and votes. It has no form and no script.
func RenderLate(w io.Writer, v Late) error {
	r := v.Request
	if r == nil {
		return errors.New("render late page: no request")
	}
	lv := lateView{Late: v, Progress: progressOf(r)}
	switch {
	case r.Status == approval.StatusApproved:
		lv.Badge, lv.Tone, lv.Heading = "Approved", "approved", "This request was approved"
	case r.Status == approval.StatusRejected:
		lv.Badge, lv.Tone, lv.Heading = "Rejected", "rejected", "This request was rejected"
	case r.Status == approval.StatusCanceled && r.Canceled != nil:
		lv.Badge, lv.Tone, lv.Heading = "Withdrawn", "warning", "This request was withdrawn"
	case r.Status == approval.StatusCanceled:
		lv.Badge, lv.Tone, lv.Heading = "Closed", "warning", "This request was closed"
	case r.Status == approval.StatusExpired && r.Decision != nil:
		lv.Badge, lv.Tone, lv.Heading = "No longer waiting", "warning", "This request is closed"
	case r.Status == approval.StatusExpired:
		lv.Badge, lv.Tone, lv.Heading = "Expired", "warning", "This request has expired"
	default:
		lv.Badge, lv.Tone, lv.Heading = "Vote recorded", "neutral", "You have voted on this request"
	}
	var buf bytes.Buffer
	if err := render(&buf, doc{Title: lv.Heading + ": " + r.Title, CSP: metaResultCSP("")}, lateContent(lv)); err != nil {
		return fmt.Errorf("render late page: %w", err)
	}
	_, err := buf.WriteTo(w)
	return err
}

// Late renders the page that takes the place of a request's one-time pages
// on a static host once they are taken down (approval.LateRenderer).
func (Renderer) Late(r *approval.Request) ([]byte, error) {
	var buf bytes.Buffer
	if err := RenderLate(&buf, Late{Request: r}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var _ approval.LateRenderer = Renderer{}
