#!/usr/bin/env bash
# gate.sh: the step of the approvalbot GitHub Action (action.yml). It asks a
# running approvalbot for a decision through its API, prints the progress while
# people vote, writes the outcome to $GITHUB_OUTPUT and exits:
#   0 approved, 1 rejected, expired or canceled, 2 bad input or no usable answer.
# If the job is canceled while it waits, it cancels the request too.
#
# Input (environment, set by action.yml from its inputs): APPROVALBOT_SERVER,
# APPROVALBOT_API_TOKEN, GATE_TITLE, GATE_DETAILS, GATE_APPROVERS, GATE_GROUPS,
# GATE_POLICY, GATE_TIMEOUT, GATE_REQUESTER, GATE_RUN_URL. Needs bash, curl and
# jq (all on GitHub's hosted runners).
set -euo pipefail

server=${APPROVALBOT_SERVER:-}
server=${server%/}
token=${APPROVALBOT_API_TOKEN:-}
out=${GITHUB_OUTPUT:-/dev/null}

fail() { # fail CODE MESSAGE: an error annotation, and the exit code
  echo "::error title=approvalbot::$2"
  exit "$1"
}

for tool in curl jq; do
  command -v "$tool" >/dev/null || fail 2 "$tool is required on the runner (install it before this step)"
done
[ -n "$server" ] || fail 2 "the server input is empty: set it to your approvalbot's URL"
case $server in http://* | https://*) ;; *) fail 2 "server \"$server\" is not an http(s) URL" ;; esac
[ -n "${GATE_TITLE:-}" ] || fail 2 "the title input is empty: say what is to be decided"

# seconds TEXT: a timeout in seconds, from "3600", "90s", "30m", "2h" or "1d".
seconds() {
  local v=${1// /}
  case $v in
    '') echo 3600 ;;
    *[!0-9smhd]* | [smhd]* | *[smhd]?*) return 1 ;;
    *s) echo $((10#${v%s})) ;;
    *m) echo $((10#${v%m} * 60)) ;;
    *h) echo $((10#${v%h} * 3600)) ;;
    *d) echo $((10#${v%d} * 86400)) ;;
    *) echo $((10#$v)) ;;
  esac
}
timeout=$(seconds "${GATE_TIMEOUT:-}") || fail 2 "timeout \"${GATE_TIMEOUT:-}\" is not a number of seconds or a duration such as 30m, 2h or 1d"

# The request, as the API's JSON.
body=$(jq -n \
  --arg title "$GATE_TITLE" \
  --arg details "${GATE_DETAILS:-}" \
  --arg requester "${GATE_REQUESTER:-github-actions}" \
  --arg approvers "${GATE_APPROVERS:-}" \
  --arg groups "${GATE_GROUPS:-}" \
  --arg policy "${GATE_POLICY:-}" \
  --arg run "${GATE_RUN_URL:-}" \
  --argjson timeout "$timeout" '
  def items: [splits("[,\n]") | gsub("^\\s+|\\s+$"; "") | select(length > 0)];
  {title: $title, details: $details, requester: $requester, timeoutSeconds: $timeout}
  + (if ($run | test("^https?://[^/]+/.+/actions/runs/[0-9]+$")) then {links: [{label: "workflow run", url: $run}]} else {} end)
  + (if ($groups | test("\\S")) then
       {groups: [$groups | splits("\n") | gsub("^\\s+|\\s+$"; "") | select(length > 0)
         | capture("^(?<name>[^:=]+?)\\s*(:\\s*(?<min>[0-9]+))?\\s*=(?<members>.*)$")
           // error("group \"\(.)\" is not name:min=member,member")
         | {name, min: ((.min // "1") | tonumber), approvers: (.members | items)}]}
     else {approvers: ($approvers | items)} end)
  + (if $policy != "" then {policy: $policy} else {} end)' 2>&1) ||
  fail 2 "groups: ${body#jq: error (at <unknown>): } (want one group per line: name:min=member,member)"

# api METHOD PATH [BODY]: one API call; prints the answer's body, then its
# HTTP status on a line of its own (000 when there was no answer).
api() {
  local args=(-sS -X "$1" --connect-timeout 10 --max-time 90 -w '\n%{http_code}' -H 'Accept: application/json')
  [ -z "$token" ] || args+=(-H "Authorization: Bearer $token")
  [ $# -lt 3 ] || args+=(-H 'Content-Type: application/json' --data-binary "$3")
  curl "${args[@]}" "$server$2" 2>/dev/null || printf '\n000'
}
status_of() { printf '%s\n' "$1" | tail -n 1; }
body_of() { printf '%s\n' "$1" | sed '$d'; }
refusal() { # the server's sentence, from an error answer
  local msg
  msg=$(body_of "$1" | jq -r '.error // empty' 2>/dev/null || true)
  echo "${msg:-HTTP $(status_of "$1")}"
}

answer=$(api POST /api/requests "$body")
case $(status_of "$answer") in
  201) ;;
  000) fail 2 "cannot reach approvalbot at $server (is it running, and reachable from this runner?)" ;;
  401 | 403) fail 2 "approvalbot at $server refused the API token: $(refusal "$answer")" ;;
  *) fail 2 "approvalbot refused the request: $(refusal "$answer")" ;;
esac
request=$(body_of "$answer")
id=$(jq -r .id <<<"$request")
echo "request-id=$id" >>"$out"
echo "Asked for approval: $(jq -r .title <<<"$request")"
echo "  request:   $id (asked by $(jq -r .requester <<<"$request"))"
echo "  approvers: $(jq -r '.approvers | join(", ")' <<<"$request")"
echo "  expires:   $(jq -r .expiresAt <<<"$request")"

# If the job is canceled while waiting, withdraw the request.
# shellcheck disable=SC2317 # called by the trap
canceled_job() {
  trap - TERM INT
  api POST "/api/requests/$id/cancel" '{"reason":"the GitHub Actions job was canceled","by":"github-actions"}' >/dev/null
  echo "The job was canceled: request $id is withdrawn."
  exit 1
}
trap canceled_job TERM INT

# Wait, printing every new vote and the progress, riding out a bot that is
# briefly unreachable (a restart) for up to 5 minutes.
seen=0
failing_since=0
while :; do
  answer=$(api GET "/api/requests/$id?wait=50s")
  code=$(status_of "$answer")
  case $code in
    200) failing_since=0 ;;
    000 | 5??)
      [ "$failing_since" != 0 ] || failing_since=$SECONDS
      [ $((SECONDS - failing_since)) -lt 300 ] || fail 2 "approvalbot at $server did not answer for 5 minutes (last: $(refusal "$answer")); request $id may still be open"
      sleep 5 &
      wait $!
      continue
      ;;
    *) fail 2 "approvalbot refused to show request $id: $(refusal "$answer")" ;;
  esac
  request=$(body_of "$answer")
  votes=$(jq '.votes | length' <<<"$request")
  if [ "$votes" -gt "$seen" ]; then
    jq -r --argjson seen "$seen" '.votes[$seen:][] | "  vote: \(.by) \(if .choice == "approve" then "approved" else "rejected" end) by \(.channel)\(if .comment != "" then ": \(.comment)" else "" end)"' <<<"$request"
    seen=$votes
    jq -r '.progress | "  progress: \(.required - .needed) of \(.required) approvals\(if .rejections > 0 then ", \(.rejections) rejections" else "" end)"' <<<"$request"
  fi
  status=$(jq -r .status <<<"$request")
  [ "$status" = pending ] || break
done
trap - TERM INT

decided_by=$(jq -r '.decision.by // .canceled.by // ""' <<<"$request")
comment=$(jq -r '.decision.comment // .canceled.reason // ""' <<<"$request")
delimiter="approvalbot_$RANDOM$RANDOM$RANDOM"
{
  echo "status=$status"
  echo "decided-by=$decided_by"
  echo "comment<<$delimiter"
  echo "$comment"
  echo "$delimiter"
} >>"$out"

said=""
[ -z "$comment" ] || said=": $comment"
case $status in
  approved) outcome="Approved by $decided_by$said" ;;
  rejected) outcome="Rejected by $decided_by$said" ;;
  expired) outcome="Expired at $(jq -r .expiresAt <<<"$request") without a decision" ;;
  canceled)
    if [ "$(jq -r '.reason // ""' <<<"$request")" = notification_failed ]; then
      outcome="Canceled: no approver could be reached"
    else
      outcome="Canceled by ${decided_by:-someone}$said"
    fi
    ;;
  *) outcome="Closed as $status" ;;
esac
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  printf '### approvalbot: %s\n\n%s (request %s)\n' "$status" "$outcome" "$id" >>"$GITHUB_STEP_SUMMARY"
fi
if [ "$status" = approved ]; then
  echo "$outcome"
  exit 0
fi
fail 1 "$outcome"
