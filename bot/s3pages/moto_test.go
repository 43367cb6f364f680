package s3pages_test

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"approvalbot/bot/s3pages"
	"approvalbot/internal/testing/mototest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

func TestPagesOnMoto(t *testing.T) {
	ctx := context.Background()
	srv := mototest.Start(t)
	client := s3.NewFromConfig(srv.Config(t), func(o *s3.Options) { o.UsePathStyle = true })
	bucket := mototest.UniqueName("pages")
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	p, err := s3pages.New(client, s3pages.Config{Bucket: bucket, BaseURL: srv.URL + "/" + bucket})
	if err != nil {
		t.Fatal(err)
	}
	const html = "<!doctype html><p>Approve? é</p>"
	for _, k := range []string{"one", "two"} {
		if err := p.Put(ctx, k, []byte(html)); err != nil {
			t.Fatalf("Put(%s): %v", k, err)
		}
	}

	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("p/one")})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	body, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(body) != html {
		t.Errorf("body = %q, want %q", body, html)
	}
	if got := aws.ToString(out.ContentType); got != s3pages.ContentType {
		t.Errorf("Content-Type = %q, want %q", got, s3pages.ContentType)
	}
	if got := aws.ToString(out.CacheControl); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	if got, want := p.URL("one"), srv.URL+"/"+bucket+"/p/one"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}

	if err := p.Delete(ctx, []string{"one", "two", "never-stored"}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, k := range []string{"p/one", "p/two"} {
		_, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
		var missing *types.NoSuchKey
		if !errors.As(err, &missing) {
			t.Errorf("GetObject(%s) after Delete = %v, want NoSuchKey", k, err)
		}
	}
}
