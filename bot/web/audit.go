package web

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"

	"approvalbot/bot/approval"
)

// Limits of GET /api/audit?limit=.
const (
	DefaultAuditLimit = 1000
	MaxAuditLimit     = 5000
)

// NextCursorHeader names the response header of GET /api/audit that holds
// the cursor of the next page (absent after the last).
const NextCursorHeader = "X-Next-Cursor"

// AuditContentType is the media type of GET /api/audit: JSON Lines, one
// audit entry per line.
const AuditContentType = "application/jsonl; charset=utf-8"

// handleAudit answers GET /api/audit?since=T&cursor=C&limit=N with a page of
// the audit log as JSON Lines (one entry per line, in the order the log
// holds them), and the next page's cursor in the X-Next-Cursor header.
func (s *server) handleAudit() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		q := approval.AuditQuery{Cursor: v.Get("cursor"), Limit: DefaultAuditLimit}
		if raw := v.Get("since"); raw != "" {
			at, err := ParseTime(raw)
			if err != nil {
				writeJSONError(w, http.StatusBadRequest, "since", fmt.Sprintf("since must be a time such as 2026-11-25T14:00:00Z or a date such as 2026-11-25, got %q", raw))
				return
			}
			q.Since = at
		}
		if l := v.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 1 || n > MaxAuditLimit {
				writeJSONError(w, http.StatusBadRequest, "limit", fmt.Sprintf("limit must be a whole number from 1 to %d, got %q", MaxAuditLimit, l))
				return
			}
			q.Limit = n
		}
		entries, next, err := s.cfg.Service.ReadAudit(r.Context(), q)
		if err != nil {
			writeReadError(w, r, err)
			return
		}
		var buf bytes.Buffer
		for _, e := range entries {
			b, _ := e.MarshalJSON()
			buf.Write(b)
			buf.WriteByte('\n')
		}
		w.Header().Set("Content-Type", AuditContentType)
		if next != "" {
			w.Header().Set(NextCursorHeader, next)
		}
		w.WriteHeader(http.StatusOK)
		w.Write(buf.Bytes())
	})
}
