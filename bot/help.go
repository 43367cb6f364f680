package main

import (
	"fmt"
	"io"
)

func printHelp(w io.Writer) {
	fmt.Fprint(w, `approvalbot: a human decision inside an automated workflow, by email and Slack.

Usage:
  go run ./bot [flags]            run the bot (the default command; also "serve")
  go run ./bot request [flags]    ask for a decision through a running bot
  go run ./bot get ID [flags]     show a request (with --wait: wait for its outcome)
  go run ./bot mcp [flags]        serve the MCP tools to an AI agent over stdio (a client of a running bot)
  go run ./bot cancel ID [flags]  withdraw a pending request (--reason text)
  go run ./bot extend ID [flags]  give a pending request more time (--timeout 2h)
  go run ./bot list [flags]       list the pending requests (or those of --status), newest first
  go run ./bot history [flags]    list the closed requests, newest first, with who decided
  go run ./bot audit export|verify   write the audit trail as JSON Lines, or check it
  go run ./bot <command> -h       help for a command

Server flags (each falls back to its environment variable):
  -addr host:port    listen address (APPROVALBOT_ADDR, default 127.0.0.1:8080)
  -data folder       data folder: database (with the one-time pages) and outbox (APPROVALBOT_DATA, default ./.approvalbot)
  -base-url URL      address used in links (APPROVALBOT_BASE_URL, default http:// + the listen address)

Server environment:
  APPROVALBOT_API_TOKEN       require "Authorization: Bearer <token>" on /api (the client sends it)
  APPROVALBOT_API_TOKEN_NAME  who the API caller is, as cancellations and extensions record it (default "api")
  APPROVALBOT_SMTP_ADDR       send mail over SMTP to host:port instead of writing to the outbox
                              (TLS required: STARTTLS, or port 465; clear text only to localhost)
  APPROVALBOT_SMTP_INSECURE   1: allow clear text to a server that offers no STARTTLS
  APPROVALBOT_SMTP_USER       SMTP user (AUTH PLAIN, over STARTTLS or port 465 TLS)
  APPROVALBOT_SMTP_PASSWORD   SMTP password
  APPROVALBOT_MAIL_FROM       sender address (default approvalbot@localhost)
  APPROVALBOT_WEBHOOK_SECRET  sign webhooks: X-Approvalbot-Signature: t=<unix>,v1=<HMAC-SHA256 of "<t>.<body>">
  APPROVALBOT_LOG_LEVEL       debug, info (default), warn or error
  APPROVALBOT_MCP_REQUESTER   the requester of requests made over MCP (/mcp and "mcp"; default mcp-agent)
  SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_APP_TOKEN, SLACK_DEFAULT_CHANNEL, SLACK_API_URL
                              Slack (see README.md, "Slack"); off when none is set

Client environment (request, get, list, history, cancel, extend, audit, mcp):
  APPROVALBOT_SERVER          the bot's URL (default http:// + APPROVALBOT_ADDR, or http://127.0.0.1:8080)
  APPROVALBOT_API_TOKEN       sent as the bearer token when set

Exit codes of request --wait and get --wait: 0 approved, 1 rejected, expired or
canceled (no approver could be reached), 2 usage error, refused input or server
unreachable. They hold for a built binary (go build -o approvalbot ./bot); "go
run" exits 1 whenever the program fails.
`)
}

func printRequestHelp(w io.Writer) {
	fmt.Fprint(w, `Usage: go run ./bot request --title T --approver EMAIL [--approver EMAIL ...] [flags]
       go run ./bot request --title T --group NAME[:MIN]=MEMBER,... [--group ...] [flags]

Creates a request through the running bot and prints its id and status. Each
email approver gets an email with a link to a personal one-time page; Slack
approvers get a direct message with buttons. Every approver votes once; the
rule says when the votes approve.

Flags:
  --title text            what is to be decided (required)
  --details text          more about it; "-" reads stdin
  --approver email        an approver (repeatable, or comma-separated); a Slack user ID (U...) works with Slack
  --policy any            how many must approve: any (one approval, the default), all (every approver),
                          or quorum:N (N distinct approvers)
  --group name:min=a,b    a group of approvers of whom at least min (default 1) must approve, e.g.
                          --group 'security:1=sec@example.com,U0SEC00001' (repeatable: every group must
                          be satisfied); instead of --approver and --policy
  --reject-policy any     when rejections reject: any (one reject, the default), or impossible (only once
                          the rule can no longer be met)
  --allow-self-approval   let the requester approve their own request (off by default: the requester's
                          approve is refused, a reject counts)
  --requester name        who asks (default $USER); compared with the voters to refuse self-approval
  --link label=url        a link shown with the request (repeatable; a bare URL works too)
  --timeout duration      how long the links work, 1m to 720h (default 1h)
  --webhook url           POST the outcome there as JSON, with every vote (retried until delivered)
  --slack-channel id      post the request to this Slack channel (when Slack is configured)
  --on-timeout expire     what the expiry does while undecided: expire (the default), reject, or approve
                          (approve unless someone has rejected it; --wait then prints "approved by timeout")
  --remind-every 1h       remind those who have not voted, this often (at least 5m)
  --remind-before 24h     remind them this long before the expiry (repeatable, or comma-separated)
  --escalate-after 2h     if still undecided after this long, also ask --escalate-to (repeatable) or, with
                          groups, --escalate-group name=member,... (repeatable), and post to --escalate-channel
  --no-delegation         approvers may not hand their vote to someone else ("Delegate to…")
  --wait                  wait for the outcome and print the votes, who decided, when, how and the comment
  --json                  print the API's JSON instead of text
  --server url            the bot (APPROVALBOT_SERVER, default http://127.0.0.1:8080)

Exit codes: 0 created (with --wait: approved), 1 rejected, expired or canceled
(with --wait; canceled when no approver could be reached), 2 usage error,
refused input or server unreachable.
`)
}

func printGetHelp(w io.Writer) {
	fmt.Fprint(w, `Usage: go run ./bot get ID [--wait] [--json] [--server url]

Shows a request: its rule, its progress and every vote (who, how, through which
channel, when, and the comment). With --wait, waits until it is decided, expires
or is canceled. Exit codes as for request.
`)
}

func printListHelp(w io.Writer) {
	fmt.Fprint(w, `Usage: go run ./bot list [--status S] [filters] [--limit N] [--all] [--cursor C] [--json] [--server url]

Lists requests, newest first (by creation), a page at a time: the pending ones,
or with --status those of another status.

Flags:
  --status S       pending (default), approved, rejected, expired, canceled, or closed (all but pending)
  --approver who   only requests this person (email address or Slack user ID) may vote on
  --requester who  only requests this person asked for
  --since T        only requests created at or after T (2026-11-25T14:00:00Z, or a date: 2026-11-25)
  --until T        only requests created before T
  --limit N        requests per page (1 to 200; default: the server's, 50)
  --all            read every page
  --cursor C       start at the page a previous listing named
  --json           print the API's JSON instead of text
`)
}

func printHistoryHelp(w io.Writer) {
	fmt.Fprint(w, `Usage: go run ./bot history [--status S] [filters] [--limit N] [--all] [--cursor C] [--json] [--server url]

Lists the closed requests, newest first (by creation): their outcome, when, who
decided (the vote that closed it) or withdrew them, and their comment or reason.

Flags: as for list; --status is closed (the default), approved, rejected,
expired or canceled.
`)
}

func printAuditHelp(w io.Writer) {
	fmt.Fprint(w, `Usage: go run ./bot audit export [--since T] [--output file] [--server url | --aws-table name]
       go run ./bot audit verify [file | -] [--server url | --aws-table name]

export writes the audit trail as JSON Lines, one event per line: every event of
every request (created, notification sent or failed, vote, close, delivery,
cancel, extension, ...) and the checkpoints that chain them, each with the
SHA-256 of the entry before it (prev) and its own (hash).

verify checks an export file (or stdin with -), or the live trail when no file
is given: every entry's hash, every request's chain (an entry edited, deleted or
moved breaks it) and every checkpoint (a request removed, or its newest entries
cut off). It names the first broken entry and exits 1 when anything is broken.

Flags:
  --since T          export only the entries at or after T (such an export cannot be verified on its own)
  --output file      write the export there instead of stdout
  --server url       the bot (APPROVALBOT_SERVER, default http://127.0.0.1:8080)
  --aws-table name   read the trail from this DynamoDB table instead of a bot, with the AWS SDK's
                     usual configuration (AWS_REGION, AWS_PROFILE or keys, AWS_ENDPOINT_URL)
`)
}

func printMCPHelp(w io.Writer) {
	fmt.Fprint(w, `Usage: go run ./bot mcp [--server url] [--requester name]

Serves approvalbot's MCP tools (request_approval, get_approval, list_approvals,
cancel_approval) over stdio, for an AI agent's MCP client to start. It is a
client of a running bot: the bot owns the database and sends the emails; this
process asks it through its API (APPROVALBOT_SERVER, APPROVALBOT_API_TOKEN).
The embedded server serves the same tools over streamable HTTP at /mcp.

Flags:
  --server url        the bot (APPROVALBOT_SERVER, default http://127.0.0.1:8080)
  --requester name    recorded as who asks (APPROVALBOT_MCP_REQUESTER, default mcp-agent); the
                      agent cannot change it, so an approver of that name cannot approve its requests

Logs go to stderr; stdout carries the protocol.
`)
}
