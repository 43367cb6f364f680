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
	"strconv"
	"strings"
	"time"

	"approvalbot/bot/approval"
)

// SignatureHeader carries a webhook's signature when a webhook secret is
// configured: "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">". The
// time is signed with the body, so that a receiver refusing signatures older
// than SignatureWindow refuses a captured delivery replayed later.
const SignatureHeader = "X-Approvalbot-Signature"

// SignatureWindow is how far a signature's time may be from the receiver's
// clock, either way, for VerifySignature to accept it.
const SignatureWindow = 5 * time.Minute

// Sign returns the SignatureHeader value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Errors of VerifySignature.
var (
	ErrSignatureMalformed = errors.New("webhook signature: want t=<unix seconds>,v1=<hex>")
	ErrSignatureStale     = errors.New("webhook signature: its time is more than 5 minutes from now")
	ErrSignatureMismatch  = errors.New("webhook signature: does not match the body")
)

// VerifySignature checks a SignatureHeader value against body and the
// secret, accepting it within SignatureWindow of now. Receivers written in Go
// can call it; the README shows the same check in ten lines.
func VerifySignature(secret []byte, header string, body []byte, now time.Time) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if sig, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrSignatureMalformed
	}
	if d := now.Sub(time.Unix(sec, 0)); d > SignatureWindow || d < -SignatureWindow {
		return ErrSignatureStale
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrSignatureMismatch
}

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
	// Now is the clock that dates the signatures; nil means time.Now.
	Now func() time.Time
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
		now := time.Now
		if w.Now != nil {
			now = w.Now
		}
		req.Header.Set(SignatureHeader, Sign(w.secret, now(), body))
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
