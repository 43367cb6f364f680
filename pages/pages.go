// Package pages renders everything a person reads: the one-time decision page,
// the result pages, the no-JavaScript confirmation step and the email bodies. The
// templates are embedded; the functions are typed.
package pages

import (
	"approvalbot/bot/approval"
	"io"
)

// ResultKind names one of the result pages.
type ResultKind string

// The result pages.
const (
	ResultApproved       ResultKind = "approved"        // this attempt approved the request
	ResultRejected       ResultKind = "rejected"        // this attempt rejected the request
	ResultAlreadyDecided ResultKind = "already-decided" // someone decided before: "already decided by X at T"
	ResultExpired        ResultKind = "expired"         // the request or link expired
	ResultGone           ResultKind = "gone"            // decided, but the workflow no longer waits
	ResultNotFound       ResultKind = "not-found"       // unknown or used link
	ResultInvalid        ResultKind = "invalid"         // bad input: Message says what
	ResultError          ResultKind = "error"           // something failed on our side
)

// Result is the data of a result page. Request may be nil (not found, invalid,
// error).
type Result struct {
	Kind    ResultKind
	Request *approval.Request
	Message string // for ResultInvalid: the validation message, shown as is
}

// Confirm is the data of the server-side confirmation step used when the page was
// submitted without JavaScript.
type Confirm struct {
	Request   *approval.Request
	Token     string
	Choice    approval.Choice
	Comment   string
	DecideURL string
}

// Renderer implements approval.Renderer.
type Renderer struct{}

var _ approval.Renderer = (*Renderer)(nil)

// Page renders a recipient's one-time page.
func (Renderer) Page(v approval.PageView) ([]byte, error) { panic("TODO") }

// Email renders an approver's email.
func (Renderer) Email(v approval.EmailView) (approval.Email, error) { panic("TODO") }

// RenderResult writes a result page.
func RenderResult(w io.Writer, v Result) error { panic("TODO") }

// RenderConfirm writes the no-JavaScript confirmation page.
func RenderConfirm(w io.Writer, v Confirm) error { panic("TODO") }

// ResultCSP is the Content-Security-Policy for result and confirmation pages,
// whose only form posts back to decideURL.
func ResultCSP(decideURL string) string { panic("TODO") }

// PageCSP is the Content-Security-Policy of the one-time page (also set in the
// page itself as a meta tag, since S3 serves it without our headers).
func PageCSP(decideURL string) string { panic("TODO") }
