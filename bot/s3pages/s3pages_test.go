package s3pages

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/google/go-cmp/cmp"
)

// fakeS3 records the calls it gets.
type fakeS3 struct {
	mu      sync.Mutex
	puts    []*s3.PutObjectInput
	deletes [][]string
	errs    []types.Error
}

func (f *fakeS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, in)
	return &s3.PutObjectOutput{}, nil
}

func (f *fakeS3) DeleteObjects(_ context.Context, in *s3.DeleteObjectsInput, _ ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	var keys []string
	for _, o := range in.Delete.Objects {
		keys = append(keys, aws.ToString(o.Key))
	}
	f.deletes = append(f.deletes, keys)
	return &s3.DeleteObjectsOutput{Errors: f.errs}, nil
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
		wantURL string
	}{
		{"default prefix", Config{Bucket: "b", BaseURL: "https://d.example.net/"}, "", "https://d.example.net/p/k"},
		{"own prefix", Config{Bucket: "b", Prefix: "pages/v1/", BaseURL: "http://127.0.0.1:9/b"}, "", "http://127.0.0.1:9/b/pages/v1/k"},
		{"no bucket", Config{BaseURL: "https://d.example.net"}, "bucket is required", ""},
		{"relative base", Config{Bucket: "b", BaseURL: "d.example.net"}, "not an absolute", ""},
		{"base with query", Config{Bucket: "b", BaseURL: "https://d.example.net/?x=1"}, "not an absolute", ""},
		{"absolute prefix", Config{Bucket: "b", Prefix: "/p/", BaseURL: "https://d.example.net"}, "must be letters", ""},
		{"climbing prefix", Config{Bucket: "b", Prefix: "../p/", BaseURL: "https://d.example.net"}, "'..' segment", ""},
		{"empty segment", Config{Bucket: "b", Prefix: "a//", BaseURL: "https://d.example.net"}, "empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(&fakeS3{}, tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if got := p.URL("k"); got != tt.wantURL {
				t.Errorf("URL = %q, want %q", got, tt.wantURL)
			}
		})
	}
}

func TestPutHeadersAndKey(t *testing.T) {
	f := &fakeS3{}
	p, err := New(f, Config{Bucket: "b", BaseURL: "https://d.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Put(context.Background(), "Ab-_9", []byte("<p>hi</p>")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if len(f.puts) != 1 {
		t.Fatalf("got %d puts, want 1", len(f.puts))
	}
	in := f.puts[0]
	got := []string{aws.ToString(in.Bucket), aws.ToString(in.Key), aws.ToString(in.ContentType), aws.ToString(in.CacheControl)}
	want := []string{"b", "p/Ab-_9", "text/html; charset=utf-8", "no-store"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bucket, key, content type, cache control (-want +got):\n%s", diff)
	}
}

func TestBadKeys(t *testing.T) {
	f := &fakeS3{}
	p, err := New(f, Config{Bucket: "b", BaseURL: "https://d.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "../x", "a/b", "a b", "a.html", strings.Repeat("a", 129)} {
		if err := p.Put(context.Background(), key, nil); err == nil {
			t.Errorf("Put(%q) succeeded, want an error", key)
		}
		if err := p.Delete(context.Background(), []string{"good", key}); err == nil {
			t.Errorf("Delete(%q) succeeded, want an error", key)
		}
	}
	if len(f.puts)+len(f.deletes) != 0 {
		t.Errorf("bad keys reached S3: %d puts, %d deletes", len(f.puts), len(f.deletes))
	}
}

func TestDeleteBatches(t *testing.T) {
	f := &fakeS3{}
	p, err := New(f, Config{Bucket: "b", BaseURL: "https://d.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 2001)
	for i := range keys {
		keys[i] = "k" + strings.Repeat("a", i%5)
	}
	if err := p.Delete(context.Background(), keys); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	var sizes []int
	for _, d := range f.deletes {
		sizes = append(sizes, len(d))
	}
	if diff := cmp.Diff([]int{1000, 1000, 1}, sizes); diff != "" {
		t.Errorf("batch sizes (-want +got):\n%s", diff)
	}
	if got := f.deletes[0][0]; got != "p/k" {
		t.Errorf("first deleted key = %q, want %q", got, "p/k")
	}
	if err := p.Delete(context.Background(), nil); err != nil {
		t.Errorf("Delete(nil) = %v, want nil", err)
	}
}

func TestDeleteReportsErrors(t *testing.T) {
	f := &fakeS3{errs: []types.Error{{Key: aws.String("p/k"), Code: aws.String("AccessDenied"), Message: aws.String("no")}}}
	p, err := New(f, Config{Bucket: "b", BaseURL: "https://d.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Delete(context.Background(), []string{"k"})
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("Delete = %v, want an error naming AccessDenied", err)
	}
	if errors.Unwrap(err) == nil {
		t.Errorf("Delete error %v wraps nothing", err)
	}
}

// Retire writes the late visitor's page over each page, with its metadata
// and the pages' headers, and checks the keys first.
func TestRetire(t *testing.T) {
	f := &fakeS3{}
	p, err := New(f, Config{Bucket: "b", Prefix: "pages/", BaseURL: "https://d.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"k1", "k2", "k3"}
	if err := p.Retire(context.Background(), keys, []byte("<p>approved by alice</p>")); err != nil {
		t.Fatalf("Retire: %v", err)
	}
	var got []string
	for _, in := range f.puts {
		got = append(got, aws.ToString(in.Key))
		if aws.ToString(in.ContentType) != ContentType || aws.ToString(in.CacheControl) != CacheControl || in.Metadata["approvalbot-page"] != "late" {
			t.Errorf("put %s: type %q, cache %q, metadata %v", aws.ToString(in.Key), aws.ToString(in.ContentType), aws.ToString(in.CacheControl), in.Metadata)
		}
	}
	slices.Sort(got)
	if diff := cmp.Diff([]string{"pages/k1", "pages/k2", "pages/k3"}, got); diff != "" {
		t.Errorf("keys written (-want +got):\n%s", diff)
	}
	if err := p.Retire(context.Background(), []string{"ok", "../x"}, []byte("x")); err == nil || len(f.puts) != 3 {
		t.Errorf("Retire with a bad key: %v, %d puts; want an error before any put", err, len(f.puts))
	}
}
