package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The demo's unattended runs end as the decision says: SUCCEEDED with the
// decision and its vote as output, or FAILED with Rejected (whose cause holds
// the vote too). It starts its own moto_server.
func TestDecide(t *testing.T) {
	tests := []struct{ decide, want string }{
		{"approve", `execution SUCCEEDED`},
		{"reject", "error: Rejected"},
	}
	for _, tt := range tests {
		t.Run(tt.decide, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var stdout, stderr strings.Builder
			if err := run(ctx, []string{"--decide", tt.decide}, &stdout, &stderr); err != nil {
				t.Fatalf("demo --decide %s: %v\nstdout:\n%s\nstderr:\n%s", tt.decide, err, stdout.String(), stderr.String())
			}
			out := stdout.String()
			for _, want := range []string{"/p/", tt.want, `"decision":`, `"votes":`, "stopped moto_server"} {
				if !strings.Contains(strings.ReplaceAll(out, `"decision": `, `"decision":`), want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestBadFlag(t *testing.T) {
	var stdout, stderr strings.Builder
	if err := run(context.Background(), []string{"--decide", "maybe"}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "approve") {
		t.Errorf("--decide maybe: err %v, want one naming the choices", err)
	}
}
