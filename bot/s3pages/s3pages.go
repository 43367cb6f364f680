// Package s3pages publishes the one-time decision pages as objects in an S3
// bucket, under a key prefix, served to people from a base URL (typically a
// CloudFront distribution in front of the bucket).
//
// A page taken down is not deleted but replaced (Retire) by the page that
// tells a late visitor what happened to its request, which holds no token and
// no form, and carries the metadata LateMetadata: S3 cannot look the request
// up when the link is opened, so the page is written once, when the request
// closes (and again should it change). The bucket's lifecycle rule removes it
// with every other page.
package s3pages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"approvalbot/bot/approval"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// DefaultPrefix is the key prefix used when none is configured.
const DefaultPrefix = "p/"

// Headers every page is stored with.
const (
	ContentType  = "text/html; charset=utf-8"
	CacheControl = "no-store"
)

// maxDeleteBatch is the most keys one DeleteObjects call accepts.
const maxDeleteBatch = 1000

// LateMetadata is the object metadata (x-amz-meta-approvalbot-page: late) of a
// page that replaced a one-time page taken down, so that what serves the
// bucket can tell it apart (a CloudFront function may answer it with 410).
var LateMetadata = map[string]string{"approvalbot-page": "late"}

// maxParallelPuts bounds the PutObject calls Retire makes at once.
const maxParallelPuts = 10

// api is the part of the S3 client that Pages uses.
type api interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, opts ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
}

// Config says where pages go and where people open them.
type Config struct {
	Bucket  string // S3 bucket name
	Prefix  string // key prefix; empty means DefaultPrefix
	BaseURL string // URL at which the bucket's keys are served, e.g. https://d123.cloudfront.net
}

// Pages stores the one-time pages in S3. It implements approval.Pages.
type Pages struct {
	client  api
	bucket  string
	prefix  string
	baseURL string
}

var (
	_ approval.Pages   = (*Pages)(nil)
	_ approval.Retirer = (*Pages)(nil)
)

// New returns Pages writing to cfg.Bucket through client (an *s3.Client).
func New(client api, cfg Config) (*Pages, error) {
	if client == nil {
		return nil, errors.New("s3pages: no S3 client")
	}
	if cfg.Bucket == "" {
		return nil, errors.New("s3pages: bucket is required")
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("s3pages: base URL %q is not an absolute http(s) URL without query", cfg.BaseURL)
	}
	return &Pages{client: client, bucket: cfg.Bucket, prefix: prefix, baseURL: base}, nil
}

// putInput is the PutObject of html under key, with its object metadata.
func (p *Pages) putInput(key string, html []byte, metadata map[string]string) *s3.PutObjectInput {
	return &s3.PutObjectInput{
		Bucket:        aws.String(p.bucket),
		Key:           aws.String(p.prefix + key),
		Body:          bytes.NewReader(html),
		ContentLength: aws.Int64(int64(len(html))),
		ContentType:   aws.String(ContentType),
		CacheControl:  aws.String(CacheControl),
		Metadata:      metadata,
	}
}

// Put stores the page under key, replacing any page there.
func (p *Pages) Put(ctx context.Context, key string, html []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := p.client.PutObject(ctx, p.putInput(key, html, nil))
	if err != nil {
		return fmt.Errorf("put page %s: %w", key, err)
	}
	return nil
}

// Delete removes the pages. Keys that do not exist are not an error (S3 does not
// report them).
func (p *Pages) Delete(ctx context.Context, keys []string) error {
	objs := make([]types.ObjectIdentifier, 0, len(keys))
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return err
		}
		objs = append(objs, types.ObjectIdentifier{Key: aws.String(p.prefix + k)})
	}
	var errs []error
	for len(objs) > 0 {
		batch := objs[:min(len(objs), maxDeleteBatch)]
		objs = objs[len(batch):]
		out, err := p.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(p.bucket),
			Delete: &types.Delete{Objects: batch, Quiet: aws.Bool(true)},
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range out.Errors {
			errs = append(errs, fmt.Errorf("%s: %s: %s", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete pages: %w", err)
	}
	return nil
}

// Retire replaces the pages under keys with html, the page that says what
// happened to their request, with the metadata LateMetadata; a few at a time,
// in parallel.
func (p *Pages) Retire(ctx context.Context, keys []string, html []byte) error {
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return err
		}
	}
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, maxParallelPuts)
		errs = make([]error, len(keys))
	)
	for i, k := range keys {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := p.client.PutObject(ctx, p.putInput(k, html, LateMetadata))
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", k, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("retire pages: %w", err)
	}
	return nil
}

// URL is the address at which a person opens the page stored under key.
func (p *Pages) URL(key string) string { return p.baseURL + "/" + p.prefix + key }

// Key is the S3 object key of the page stored under key.
func (p *Pages) Key(key string) string { return p.prefix + key }

// checkKey accepts the page names approval.NewPageKey makes: URL-safe base64,
// nothing that could climb out of the prefix.
func checkKey(key string) error {
	if key == "" || len(key) > 128 || strings.Trim(key, safeChars) != "" {
		return fmt.Errorf("page key %q: %w", key, approval.Invalidf("key", "page key must be 1 to 128 letters, digits, '-' or '_'"))
	}
	return nil
}

// checkPrefix accepts a relative key prefix made of path segments.
func checkPrefix(prefix string) error {
	if strings.HasPrefix(prefix, "/") || strings.Trim(prefix, safeChars+"/.") != "" || len(prefix) > 256 {
		return fmt.Errorf("s3pages: prefix %q must be letters, digits, '-', '_', '.' and '/' and not start with '/'", prefix)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(prefix, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("s3pages: prefix %q has an empty, '.' or '..' segment", prefix)
		}
	}
	return nil
}

const safeChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
