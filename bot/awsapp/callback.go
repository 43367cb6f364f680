package awsapp

import (
	"net/http"

	"approvalbot/bot/web"
)

// CallbackHandler is the callback Lambda's HTTP handler: the embedded mode's
// handler with its local API disabled and no page route (the pages are on S3).
// It serves POST /decide (the one-time pages' form) and explains itself on GET.
func (a *App) CallbackHandler() http.Handler {
	return web.New(web.Config{
		Service:    a.Service,
		PageURL:    a.Service.Pages.URL,
		DecideURL:  a.Config.DecideURL(),
		DisableAPI: true,
		Log:        a.Log,
	})
}
