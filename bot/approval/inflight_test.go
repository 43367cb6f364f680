package approval

import (
	"sync"
	"testing"
	"time"
)

// Waiting for the background work while other work starts is allowed (a
// callback waits for its effects while a concurrent click starts its own),
// and the wait ends once nothing runs.
func TestInFlightWaitWhileWorkStarts(t *testing.T) {
	var f inFlight
	select {
	case <-f.idle():
	default:
		t.Fatal("idle with nothing running is not closed")
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			f.add()
			time.Sleep(time.Millisecond)
			f.finish()
		})
		wg.Go(func() { <-f.idle() })
	}
	wg.Wait()
	f.add()
	idle := f.idle()
	select {
	case <-idle:
		t.Fatal("idle while work runs")
	default:
	}
	f.finish()
	select {
	case <-idle:
	case <-time.After(5 * time.Second):
		t.Fatal("idle not closed once the work finished")
	}
}
