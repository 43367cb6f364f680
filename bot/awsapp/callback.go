package awsapp

import (
	"context"
	"net/http"
	"strings"

	"approvalbot/bot/approval"
	"approvalbot/bot/web"
)

// CallbackHandler is the callback Lambda's HTTP handler: the embedded mode's
// handler with its local API disabled and no page route (the pages are on S3).
// It serves POST /decide (the one-time pages' form) and explains itself on GET.
//
// Build the App with NewCallback (CallbackFromEnv does): its service is
// asynchronous. A vote is answered as soon as it is recorded and, when it closes the
// request, Step Functions is told; deleting the pages, updating Slack and
// recording those effects finish after the answer is written but before the
// handler returns, so that the invocation ends only when all is done. The
// function URL streams the answer (InvokeMode RESPONSE_STREAM): the person
// reads it while the rest runs.
func (a *App) CallbackHandler() http.Handler {
	h := web.New(web.Config{
		Service:    a.Service,
		PageURL:    a.Service.Pages.URL,
		DecideURL:  a.Config.DecideURL(),
		DisableAPI: true,
		Log:        a.Log,
	})
	relative := !strings.Contains(a.Config.DecideURL(), "://")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if relative {
			r = r.WithContext(approval.WithDecideURL(r.Context(), ownDecideURL(r)))
		}
		h.ServeHTTP(w, r)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if err := a.Service.Idle(context.WithoutCancel(r.Context())); err != nil {
			a.Log.Error("callback: effects left to the sweep", "err", err)
		}
	})
}

// ownDecideURL is the decide address of the function URL r came to, for the
// pages the callback mints (a delegate's), which are served from the pages'
// address and so cannot post to a relative /decide: Lambda sets
// X-Forwarded-Proto to https, and the request's host is the function URL's
// domain (also behind a CloudFront distribution, which does not forward the
// viewer's Host). Anywhere else (no X-Forwarded-Proto: https) it is "", and
// the service's own decide address holds.
func ownDecideURL(r *http.Request) string {
	if r.Header.Get("X-Forwarded-Proto") != "https" || r.Host == "" {
		return ""
	}
	return "https://" + r.Host + DecidePath
}
