package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"approvalbot/bot/approval"
	"approvalbot/bot/dynamo"
	"approvalbot/bot/web"
)

// auditPage is how many entries one call of the export asks for.
const auditPage = 2000

// maxAuditLine is the longest line of an export that verify reads.
const maxAuditLine = 4 << 20

// auditSource reads the audit log a page at a time.
type auditSource func(ctx context.Context, since time.Time, cursor string) ([]approval.AuditEntry, string, error)

// runAudit runs "audit export" and "audit verify".
func runAudit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printAuditHelp(stdout)
		return usageErr("audit: want export or verify (see audit -h)")
	}
	switch args[0] {
	case "export":
		return runAuditExport(ctx, args[1:], getenv, stdout)
	case "verify":
		return runAuditVerify(ctx, args[1:], getenv, stdout)
	case "-h", "-help", "--help", "help":
		printAuditHelp(stdout)
		return nil
	}
	return usageErr("audit: unknown command %q: want export or verify (see audit -h)", args[0])
}

// sourceFlags adds the flags that say where the log is read: the bot's API,
// or a DynamoDB table.
func sourceFlags(fs *flag.FlagSet, getenv func(string) string) (c *client, table *string) {
	c = clientFlags(fs, getenv)
	table = fs.String("aws-table", "", "")
	return c, table
}

// source is the log that the flags name.
func source(ctx context.Context, c *client, table string) (auditSource, error) {
	if table == "" {
		return c.auditPage, nil
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, usageErr("AWS configuration: %v", err)
	}
	st := dynamo.New(dynamodb.NewFromConfig(cfg), table)
	return func(ctx context.Context, since time.Time, cursor string) ([]approval.AuditEntry, string, error) {
		es, next, err := st.ReadAudit(ctx, approval.AuditQuery{Since: since, Cursor: cursor, Limit: 100})
		if err != nil {
			return nil, "", fmt.Errorf("read the audit trail from table %s: %w", table, err)
		}
		return es, next, nil
	}, nil
}

// auditPage reads one page of GET /api/audit.
func (c *client) auditPage(ctx context.Context, since time.Time, cursor string) ([]approval.AuditEntry, string, error) {
	q := url.Values{"limit": {strconv.Itoa(auditPage)}}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	body, header, err := c.raw(ctx, "/api/audit?"+q.Encode())
	if err != nil {
		return nil, "", err
	}
	var out []approval.AuditEntry
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, maxAuditLine)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		e, err := approval.ParseAuditEntry(sc.Bytes())
		if err != nil {
			return nil, "", fmt.Errorf("the server's answer is not the audit log: %w", err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, "", fmt.Errorf("read the audit log: %w", err)
	}
	return out, header.Get(web.NextCursorHeader), nil
}

// raw sends a GET and returns the body of a 2xx answer as it is.
func (c *client) raw(ctx context.Context, path string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(c.server, "/")+path, nil)
	if err != nil {
		return nil, nil, usageErr("server %q: %v", c.server, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, fmt.Errorf("cannot reach approvalbot at %s (is it running? start it with: go run ./bot): %w", c.server, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e web.ErrorJSON
		if jsonErr := json.Unmarshal(b, &e); jsonErr != nil || e.Error == "" {
			e.Error = resp.Status
		}
		return nil, nil, &apiError{status: resp.StatusCode, msg: "the server refused: " + e.Error}
	}
	return b, resp.Header, nil
}

// runAuditExport writes the audit log as JSON Lines, a page at a time.
func runAuditExport(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	c, table := sourceFlags(fs, getenv)
	sinceText := fs.String("since", "", "")
	output := fs.String("output", "", "")
	if err := parseFlags(fs, args, stdout, printAuditHelp); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("audit export: unexpected argument %q (see audit -h)", fs.Arg(0))
	}
	var since time.Time
	if *sinceText != "" {
		t, err := web.ParseTime(*sinceText)
		if err != nil {
			return usageErr("--since %q: want a time such as 2026-11-25T14:00:00Z or a date such as 2026-11-25", *sinceText)
		}
		since = t
	}
	read, err := source(ctx, c, *table)
	if err != nil {
		return err
	}
	w := stdout
	var f *os.File
	if *output != "" && *output != "-" {
		if f, err = os.Create(*output); err != nil {
			return usageErr("--output: %v", err)
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriter(w)
	n, err := exportAudit(ctx, read, since, bw)
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err == nil && f != nil {
		err = f.Close()
	}
	if err != nil {
		return clientErr(fmt.Errorf("audit export: %w (after %d entries)", err, n))
	}
	return nil
}

// exportAudit writes every entry read from read as a line of w, and returns
// how many it wrote.
func exportAudit(ctx context.Context, read auditSource, since time.Time, w io.Writer) (int, error) {
	n, cursor := 0, ""
	for {
		es, next, err := read(ctx, since, cursor)
		if err != nil {
			return n, err
		}
		for _, e := range es {
			b, _ := e.MarshalJSON()
			if _, err := w.Write(append(b, '\n')); err != nil {
				return n, err
			}
			n++
		}
		if next == "" || next == cursor {
			return n, nil
		}
		cursor = next
	}
}

// runAuditVerify verifies an export file (or stdin), or the live log.
func runAuditVerify(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	c, table := sourceFlags(fs, getenv)
	// Allow the file before or after the flags.
	var file string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	} else if len(args) > 0 && args[0] == "-" {
		file, args = "-", args[1:]
	}
	if err := parseFlags(fs, args, stdout, printAuditHelp); err != nil {
		return err
	}
	if file == "" && fs.NArg() > 0 {
		file = fs.Arg(0)
	}
	if fs.NArg() > 1 || (file != "" && *table != "") {
		return usageErr("audit verify: give an export file, or --aws-table, or neither for the running bot (see audit -h)")
	}
	var (
		lines []approval.AuditLine
		what  string
		err   error
	)
	if file != "" {
		what = file
		lines, err = readExport(file)
	} else {
		var read auditSource
		if read, err = source(ctx, c, *table); err != nil {
			return err
		}
		what = "the audit log of " + c.server
		if *table != "" {
			what = "the audit log of table " + *table
		}
		lines, err = readLive(ctx, read)
	}
	if err != nil {
		return clientErr(err)
	}
	rep := approval.VerifyAudit(lines, time.Now())
	if !rep.OK() {
		for i, p := range rep.Problems {
			if i == 20 {
				fmt.Fprintf(stdout, "... and %d more\n", len(rep.Problems)-i)
				break
			}
			fmt.Fprintf(stdout, "broken: %s\n", oneLine(p.String()))
		}
		return &exitError{code: exitNotOK, err: fmt.Errorf("%s is broken: first at %s", what, oneLine(rep.Problems[0].String()))}
	}
	fmt.Fprintf(stdout, "ok: %s: %d entries of %d requests and %d checkpoints verified", what, rep.Entries, rep.Requests, rep.Checkpoints)
	if rep.Expired > 0 {
		fmt.Fprintf(stdout, "; %d requests sealed by a checkpoint are past their retention", rep.Expired)
	}
	if rep.Unsealed > 0 {
		fmt.Fprintf(stdout, "; %d requests have entries newer than the last checkpoint", rep.Unsealed)
	}
	fmt.Fprintln(stdout)
	return nil
}

// readExport reads an export file ("-": stdin) line by line.
func readExport(file string) ([]approval.AuditLine, error) {
	var r io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, usageErr("audit verify: %v", err)
		}
		defer f.Close()
		r = f
	}
	var lines []approval.AuditLine
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxAuditLine)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		e, err := approval.ParseAuditEntry(sc.Bytes())
		lines = append(lines, approval.AuditLine{Line: n, Entry: e, Err: err})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return lines, nil
}

// readLive reads the whole live log, numbering its entries as the lines of
// an export.
func readLive(ctx context.Context, read auditSource) ([]approval.AuditLine, error) {
	var lines []approval.AuditLine
	cursor := ""
	for {
		es, next, err := read(ctx, time.Time{}, cursor)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			lines = append(lines, approval.AuditLine{Line: len(lines) + 1, Entry: e})
		}
		if next == "" || next == cursor {
			return lines, nil
		}
		cursor = next
	}
}

// apiError is an answer of the API other than 2xx, in the server's words.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }
