//go:build unix

package motoserver_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"approvalbot/internal/testing/mototest/motoserver"
)

func TestStartNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := motoserver.Start(context.Background(), nil)
	if !errors.Is(err, motoserver.ErrNotInstalled) {
		t.Fatalf("Start error = %v, want ErrNotInstalled", err)
	}
	if got, want := err.Error(), `pip install "moto[server]==5.2.1"`; !strings.Contains(got, want) {
		t.Errorf("Start error = %q, want it to contain %q", got, want)
	}
}

// TestStartExitsEarly runs a stand-in moto_server that prints its environment
// and exits: Start fails with that output, having given it the extra variables
// and not the inherited MOTO_PORT, and tries three ports.
func TestStartExitsEarly(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	script := "#!/bin/sh\necho run >> '" + runs + "'\necho \"port=[$MOTO_PORT] extra=[$EXTRA] args=[$*]\"\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, "moto_server"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	t.Setenv("MOTO_PORT", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := motoserver.Start(ctx, []string{"EXTRA=x"})
	if err == nil {
		s.Stop()
		t.Fatal("Start succeeded, want an error")
	}
	for _, want := range []string{"exited before answering", "port=[] extra=[x] args=[-H 127.0.0.1 -p "} {
		if got := err.Error(); !strings.Contains(got, want) {
			t.Errorf("Start error = %q, want it to contain %q", got, want)
		}
	}
	b, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Count(string(b), "run"), 3; got != want {
		t.Errorf("moto_server ran %d times, want %d", got, want)
	}
}
