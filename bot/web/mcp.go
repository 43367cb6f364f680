package web

import (
	"net/http"
	"time"
)

// mcp wraps the /mcp handler: a call may wait for a decision for up to
// MCPMaxWait (longer than the server's write timeout, which is sized for the
// API's 60-second long poll), and browsers may not call it from another site.
func (s *server) mcp(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	return cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Not every writer has a deadline to move (httptest's recorder has
		// none): then there is no timeout to escape either.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.MCPMaxWait))
		next.ServeHTTP(w, r)
	}))
}
