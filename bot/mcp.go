package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	apiclient "approvalbot/bot/client"
	"approvalbot/bot/mcpserver"
)

// runMCP serves the MCP tools over stdio (stdin and stdout) as a client of a
// running bot's API. One process, the bot, owns the database; any number of
// agents' "bot mcp" processes ask it, as the command-line client does. Logs go
// to stderr: stdout carries the protocol.
func runMCP(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp", flag.ContinueOnError)
	c := clientFlags(fs, getenv)
	requester := fs.String("requester", mcpRequester(getenv), "")
	if err := parseFlags(fs, args, stderr, printMCPHelp); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("mcp: unexpected argument %q (see mcp -h)", fs.Arg(0))
	}
	// The tools wait up to 600 s in long polls of 20 s: the client's own
	// timeout (90 s) bounds each.
	api := apiclient.New(c.server, c.token)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	probe(ctx, api, log)
	s := mcpserver.New(mcpserver.Config{API: api, Requester: *requester, Log: log})
	err := s.Run(ctx, &mcp.IOTransport{Reader: io.NopCloser(stdin), Writer: nopWriteCloser{stdout}})
	if err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("mcp: %w", err)
	}
	return nil
}

// probe says on stderr, where MCP clients show a server's log, when the bot
// cannot be reached or refuses the token: the tools would fail the same way.
func probe(ctx context.Context, api *apiclient.Client, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := api.List(ctx, apiclient.ListOptions{Limit: 1})
	switch {
	case errors.Is(err, apiclient.ErrUnauthorized):
		log.Error("approvalbot refuses the API token: set APPROVALBOT_API_TOKEN to the bot's token", "server", api.BaseURL())
	case errors.Is(err, apiclient.ErrUnreachable):
		log.Warn("approvalbot cannot be reached yet; the tools will fail until it runs (start it with: go run ./bot)", "server", api.BaseURL())
	case err != nil && !errors.Is(err, context.DeadlineExceeded):
		log.Warn("approvalbot answered with an error", "server", api.BaseURL(), "err", err)
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// selfTransport sends the /mcp tools' API calls straight to the bot's own
// handler, in memory: the tools go through the same API (its checks, its
// errors, its long polls) without a socket, whatever address the bot is
// reached at. Calls end when stop is done (the server shutting down).
func selfTransport(stop context.Context, h func() http.Handler) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if stop.Err() != nil {
			return nil, errors.New("approvalbot is shutting down")
		}
		ctx, cancel := context.WithCancel(req.Context())
		defer cancel()
		defer context.AfterFunc(stop, cancel)()
		in := req.Clone(ctx)
		in.Host = req.URL.Host // the bot's own host name, as a caller over the network would send it
		in.RequestURI = req.URL.RequestURI()
		in.RemoteAddr = "127.0.0.1:0"
		rec := &recorded{header: http.Header{}}
		h().ServeHTTP(rec, in)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		return &http.Response{
			Status: fmt.Sprintf("%d %s", rec.code, http.StatusText(rec.code)), StatusCode: rec.code,
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: rec.header, Body: io.NopCloser(bytes.NewReader(rec.body.Bytes())), ContentLength: int64(rec.body.Len()),
			Request: req,
		}, nil
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// recorded is an in-memory response.
type recorded struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorded) Header() http.Header { return r.header }

func (r *recorded) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *recorded) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// mcpRequester is who asks, for requests made over MCP.
func mcpRequester(getenv func(string) string) string {
	return strings.TrimSpace(envOr(getenv, "APPROVALBOT_MCP_REQUESTER", mcpserver.DefaultRequester))
}
