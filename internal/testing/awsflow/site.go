package awsflow

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdaurl"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Site is a loopback web server standing in for the two public addresses of the
// AWS form: CloudFront in front of the pages bucket (GET <prefix><key>) and the
// callback Lambda's function URL (everything else). Both share the site's URL,
// which is thus the value of PAGES_BASE_URL and of CALLBACK_URL.
type Site struct {
	ln  net.Listener
	srv *http.Server

	mu       sync.Mutex
	prefix   string
	pages    http.Handler
	callback http.Handler
}

// NewSite listens on a free loopback port (or on addr, such as
// "127.0.0.1:8080", when it is not empty). Call Serve to give it its handlers.
func NewSite(addr string) (*Site, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("site: %w", err)
	}
	s := &Site{ln: ln}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// URL is the site's base address, such as http://127.0.0.1:41234.
func (s *Site) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the site.
func (s *Site) Close() error { return s.srv.Close() }

// Serve routes GET and HEAD under /<prefix> to pages and every other request to
// callback.
func (s *Site) Serve(prefix string, pages, callback http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prefix, s.pages, s.callback = "/"+prefix, pages, callback
}

// ServeHTTP routes one request.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	prefix, pages, callback := s.prefix, s.pages, s.callback
	s.mu.Unlock()
	switch {
	case pages != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(r.URL.Path, prefix):
		pages.ServeHTTP(w, r)
	case callback != nil:
		callback.ServeHTTP(w, r)
	default:
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	}
}

// objectGetter is the S3 call BucketPages makes.
type objectGetter interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// BucketPages serves the objects of bucket as CloudFront would: GET /<key>
// answers the object with its stored Content-Type and Cache-Control, or 404.
func BucketPages(client objectGetter, bucket string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/")
		out, err := client.GetObject(r.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			var missing *types.NoSuchKey
			if errors.As(err, &missing) {
				http.Error(w, "This page does not exist (any more).", http.StatusNotFound)
				return
			}
			http.Error(w, "The page cannot be read.", http.StatusBadGateway)
			return
		}
		defer out.Body.Close()
		w.Header().Set("Content-Type", aws.ToString(out.ContentType))
		w.Header().Set("Cache-Control", aws.ToString(out.CacheControl))
		w.Header().Set("X-Content-Type-Options", "nosniff")
		io.Copy(w, out.Body)
	})
}

// maxBody is a function URL's request payload limit (6 MB).
const maxBody = 6 << 20

// FunctionURL serves h the way a Lambda function URL (InvokeMode
// RESPONSE_STREAM) and aws-lambda-go's lambdaurl do: the HTTP request becomes
// an events.LambdaFunctionURLRequest (lower-case headers, body base64-encoded
// unless it is text, as function URLs encode form posts), which lambdaurl.Wrap
// turns back into an *http.Request for h; the streamed response is written back.
func FunctionURL(h http.Handler) http.Handler {
	invoke := lambdaurl.Wrap(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(body) > maxBody {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		ev := &events.LambdaFunctionURLRequest{
			Version:        "2.0",
			RawPath:        r.URL.EscapedPath(),
			RawQueryString: r.URL.RawQuery,
			Headers:        map[string]string{},
			RequestContext: events.LambdaFunctionURLRequestContext{
				DomainName: r.Host,
				HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{
					Method: r.Method, Path: r.URL.Path, Protocol: r.Proto,
					SourceIP: hostOnly(r.RemoteAddr), UserAgent: r.UserAgent(),
				},
				TimeEpoch: time.Now().UnixMilli(),
			},
		}
		for k, v := range r.Header {
			if strings.EqualFold(k, "Cookie") {
				ev.Cookies = append(ev.Cookies, v...)
				continue
			}
			ev.Headers[strings.ToLower(k)] = strings.Join(v, ",")
		}
		ev.Headers["host"] = r.Host
		if len(body) > 0 {
			if isText(r.Header.Get("Content-Type")) {
				ev.Body = string(body)
			} else {
				ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
			}
		}
		resp, err := invoke(r.Context(), ev)
		if err != nil {
			http.Error(w, "function error", http.StatusBadGateway)
			return
		}
		for k, v := range resp.Headers {
			w.Header().Set(k, v)
		}
		for _, c := range resp.Cookies {
			w.Header().Add("Set-Cookie", c)
		}
		w.WriteHeader(resp.StatusCode)
		streamTo(w, resp.Body)
	})
}

// streamTo copies a streamed response body to w as it comes, flushing each
// piece, as a function URL in RESPONSE_STREAM mode does.
func streamTo(w http.ResponseWriter, body io.Reader) {
	f, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if f != nil {
				f.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// isText reports whether a function URL would pass a body of this type as is.
// It passes JSON and text; form posts (application/x-www-form-urlencoded)
// arrive base64-encoded.
func isText(contentType string) bool {
	ct := strings.ToLower(contentType)
	return strings.HasPrefix(ct, "text/") || strings.HasPrefix(ct, "application/json")
}

func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
