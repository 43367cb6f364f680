package botproc_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"approvalbot/internal/testing/botproc"
)

// TestStartStopKill builds the bot, runs it twice over one data folder (a
// clean stop, then a kill) and checks what the package promises: a loopback
// URL that answers, a clean environment, /proc readings, a clean exit.
func TestStartStopKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real bot; skipped under -short")
	}
	ctx := context.Background()
	bin, err := botproc.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	// A setting in the caller's environment must not reach the bot: with
	// this token its API would answer 401 to the anonymous call below.
	t.Setenv("APPROVALBOT_API_TOKEN", "from-the-caller")
	var logs bytes.Buffer // read once the bot has exited
	p, err := botproc.Start(ctx, bin, botproc.Options{Data: data, LogLevel: "warn", Stdout: &logs, Stderr: &logs})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.URL(), "http://127.0.0.1:") {
		t.Errorf("URL %q, want http://127.0.0.1:port", p.URL())
	}
	res, err := http.Get(p.URL() + "/api/requests")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET /api/requests: status %d, want 200 (the caller's API token leaked into the bot?)", res.StatusCode)
	}
	if runtime.GOOS == "linux" {
		peak, current, ok := p.Memory()
		if !ok || current <= 0 || peak < current {
			t.Errorf("Memory = %d, %d, %v; want a peak at least the current RSS > 0", peak, current, ok)
		}
		if _, ok := p.CPU(); !ok {
			t.Error("CPU: not readable")
		}
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "shutting down") || strings.Contains(logs.String(), "level=INFO") {
		t.Errorf("want a shutdown line and no INFO line at log level warn; the output:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(data, "approvalbot.db")); err != nil {
		t.Errorf("no database in the data folder: %v", err)
	}

	p, err = botproc.Start(ctx, bin, botproc.Options{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	if _, ok := p.CPU(); ok {
		t.Error("CPU of a killed process: still readable")
	}
	if err := p.Stop(); err == nil {
		t.Error("Stop after Kill: no error, want the kill reported")
	}
}

func TestStartNeedsData(t *testing.T) {
	if _, err := botproc.Start(context.Background(), "/nonexistent", botproc.Options{}); err == nil {
		t.Error("Start without a data folder: no error")
	}
}
