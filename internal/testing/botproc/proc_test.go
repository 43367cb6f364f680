package botproc

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestProcStatCPU(t *testing.T) {
	// Fields 14 and 15 (utime, stime) are 250 and 50 ticks; the command
	// name holds a space and a parenthesis.
	stat := "4242 (app (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 9 0 12345 1000000 500 18446744073709551615"
	got, ok := procStatCPU(stat)
	if !ok || got != 3*time.Second {
		t.Errorf("procStatCPU = %v, %v; want 3s, true", got, ok)
	}
	for _, bad := range []string{"", "4242 (app", "4242 (app) S 1 2", "4242 (app) S 1 2 3 4 5 6 7 8 9 x y"} {
		if got, ok := procStatCPU(bad); ok {
			t.Errorf("procStatCPU(%q) = %v, true; want false", bad, got)
		}
	}
	if runtime.GOOS == "linux" {
		raw, err := os.ReadFile("/proc/self/stat")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := procStatCPU(string(raw)); !ok {
			t.Errorf("procStatCPU cannot read this process's /proc/self/stat: %q", raw)
		}
	}
}

func TestProcStatusKB(t *testing.T) {
	status := "Name:\tapprovalbot\nVmPeak:\t  999 kB\nVmHWM:\t   25600 kB\nVmRSS:\t   20480 kB\n"
	tests := []struct {
		key  string
		want int64
	}{
		{"VmHWM", 25600 << 10},
		{"VmRSS", 20480 << 10},
		{"VmSwap", 0},
	}
	for _, tt := range tests {
		if got := procStatusKB(status, tt.key); got != tt.want {
			t.Errorf("procStatusKB(%s) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

func TestCleanEnvDropsBotSettings(t *testing.T) {
	got := cleanEnv([]string{"PATH=/bin", "APPROVALBOT_SMTP_ADDR=mail:25", "SLACK_BOT_TOKEN=x", "HOME=/root"})
	if diff := cmp.Diff([]string{"PATH=/bin", "HOME=/root"}, got); diff != "" {
		t.Errorf("cleanEnv (-want +got):\n%s", diff)
	}
}

func TestWatcherFindsTheListeningLine(t *testing.T) {
	addr := make(chan string, 1)
	var out strings.Builder
	w := &watcher{w: &out, addr: addr}
	// The line comes after another, split over writes, and is said once.
	for _, part := range []string{"time=x level=WARN msg=slow\nappro", "valbot listening on 127.0.0.1:4242 \n", "approvalbot listening on 127.0.0.1:1\n"} {
		if _, err := w.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case got := <-addr:
		if got != "127.0.0.1:4242" {
			t.Errorf("address %q, want 127.0.0.1:4242", got)
		}
	default:
		t.Fatal("no address sent")
	}
	if want := "time=x level=WARN msg=slow\napprovalbot listening on 127.0.0.1:4242 \napprovalbot listening on 127.0.0.1:1\n"; out.String() != want {
		t.Errorf("passed on %q, want %q", out.String(), want)
	}
}
