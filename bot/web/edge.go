package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// edge wraps every route: security headers on every response, panics turned
// into a plain 500, and one log line per request naming the route pattern (never
// the path, which may hold a page key).
func (s *server) edge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", s.resultCSP)

		info := &requestInfo{}
		rec := &recorder{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				info.err = fmt.Errorf("panic: %v", p)
				if !rec.wrote {
					s.writeError(rec, r, http.StatusInternalServerError)
				}
			}
			s.logRequest(r, rec.status(), time.Since(start), info)
		}()
		next.ServeHTTP(rec, r)
	})
}

func (s *server) logRequest(r *http.Request, status int, d time.Duration, info *requestInfo) {
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
	}
	if info.requestID != "" {
		attrs = append(attrs, slog.String("request_id", info.requestID))
	}
	level := slog.LevelInfo
	if info.err != nil {
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("err", info.err.Error()))
	}
	if status >= 500 {
		level = slog.LevelError
	}
	s.log.LogAttrs(r.Context(), level, "http request", attrs...)
}

// writeError answers with a bare error in the format the route uses.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, status int) {
	if isAPI(r) {
		writeJSONError(w, status, "", "internal error")
		return
	}
	s.writeResult(w, r, status, resultError())
}

// requestInfo carries what a handler wants in the request's log line.
type requestInfo struct {
	err       error
	requestID string
}

type infoKey struct{}

// noteErr records err for the request's log line (the one place it is logged).
func noteErr(r *http.Request, err error) {
	if info, ok := r.Context().Value(infoKey{}).(*requestInfo); ok && err != nil {
		info.err = errors.Join(info.err, err)
	}
}

// noteRequest records the approval request the HTTP request was about.
func noteRequest(r *http.Request, id string) {
	if info, ok := r.Context().Value(infoKey{}).(*requestInfo); ok {
		info.requestID = id
	}
}

// recorder remembers the status written.
type recorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *recorder) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if !w.wrote {
		w.code, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *recorder) status() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.code
}
