package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"approvalbot/bot/approval"
)

// Outbox is a mailer that writes each message as an .eml file to a folder instead
// of sending it. Any mail client opens the files; tests read them. A message
// whose sending is retried (its first attempt's outcome was not recorded) may
// be written twice, as a mail server may deliver it twice.
type Outbox struct {
	dir  string
	from string
	now  func() time.Time
}

var _ approval.Mailer = (*Outbox)(nil)

// NewOutbox returns an outbox writing to dir (created if needed) with from as the
// sender; an empty from means DefaultFrom. now is the clock; nil means time.Now.
// It removes the temporary files a crash left in dir.
func NewOutbox(dir, from string, now func() time.Time) (*Outbox, error) {
	if from == "" {
		from = DefaultFrom
	}
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox folder: %w", err)
	}
	if _, err := RemoveTemp(dir); err != nil {
		return nil, fmt.Errorf("outbox folder: %w", err)
	}
	return &Outbox{dir: dir, from: from, now: now}, nil
}

// Dir is the outbox folder.
func (o *Outbox) Dir() string { return o.dir }

// Send writes m to a new file <time>-<random>.eml in the outbox, which
// appears whole or not at all (see writeNewFile).
func (o *Outbox) Send(ctx context.Context, m approval.Email) error {
	now := o.now()
	msg, _, err := Compose(o.from, m, now)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	name := now.UTC().Format("20060102T150405.000000000Z") + "-" + randomHex(4) + ".eml"
	if err := writeNewFile(filepath.Join(o.dir, name), msg); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}
