package local

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"approvalbot/bot/approval"
)

// SignatureHeader carries the HMAC-SHA256 of a webhook body, as "sha256=<hex>",
// when a webhook secret is configured.
const SignatureHeader = "X-Approvalbot-Signature"

// Webhook is the workflow of the embedded mode: it POSTs each outcome, as the JSON
// of approval.Result (the decision, its reason and every vote), to the request's
// webhook URL. Any 2xx answer means delivered; anything else is an error. The
// service runs it as the request's deliver effect, in the background: the
// person whose vote closed the request has their answer before the webhook is
// called, and a failed or timed-out POST is tried again with backoff (by the
// sweep, also after a restart) until the webhook takes it or the attempts run
// out. Delivery is at least once: a POST whose answer was lost is sent again,
// with the same X-Approvalbot-Request-Id. A request without a webhook URL is
// delivered at once.
type Webhook struct {
	client *http.Client
	secret []byte
}

var _ approval.Workflow = (*Webhook)(nil)

// NewWebhook returns the workflow. With a secret, every POST carries
// SignatureHeader. A nil client means one with a 10-second timeout.
func NewWebhook(client *http.Client, secret string) *Webhook {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	// Redirects are not followed: a POST turned into a GET delivers nothing.
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	w := &Webhook{client: &c}
	if secret != "" {
		w.secret = []byte(secret)
	}
	return w
}

// Deliver POSTs the outcome of r to r.WebhookURL.
func (w *Webhook) Deliver(ctx context.Context, r *approval.Request) error {
	if r.WebhookURL == "" {
		return nil
	}
	u, err := url.Parse(r.WebhookURL)
	if err != nil {
		return fmt.Errorf("webhook: bad URL: %w", err)
	}
	host := u.Host // the URL itself may hold a secret: errors name the host only
	body, err := json.Marshal(r.Result())
	if err != nil {
		return fmt.Errorf("webhook %s: %w", host, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: bad request", host)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "approvalbot")
	req.Header.Set("X-Approvalbot-Request-Id", r.ID)
	if w.secret != nil {
		mac := hmac.New(sha256.New, w.secret)
		mac.Write(body)
		req.Header.Set(SignatureHeader, "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("webhook %s: %w", host, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s: answered %s", host, resp.Status)
	}
	return nil
}
