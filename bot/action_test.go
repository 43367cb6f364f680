package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	apiclient "approvalbot/bot/client"
)

// actionDir is the GitHub Action, from this package's folder.
const actionDir = "../scripts/github-action"

// actionMeta is what the tests read of action.yml.
type actionMeta struct {
	Inputs map[string]struct {
		Required bool   `yaml:"required"`
		Default  string `yaml:"default"`
	} `yaml:"inputs"`
	Outputs map[string]struct {
		Value string `yaml:"value"`
	} `yaml:"outputs"`
	Runs struct {
		Using string `yaml:"using"`
		Steps []struct {
			ID    string            `yaml:"id"`
			Shell string            `yaml:"shell"`
			Env   map[string]string `yaml:"env"`
			Run   string            `yaml:"run"`
		} `yaml:"steps"`
	} `yaml:"runs"`
}

func readAction(t *testing.T) actionMeta {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(actionDir, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var a actionMeta
	if err := yaml.Unmarshal(b, &a); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	return a
}

// needTools fails under CI, and skips elsewhere, when a program the test runs
// is missing (scripts/test installs them).
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is required (scripts/test installs it)", tool)
			}
			t.Skipf("%s is not installed (scripts/test installs it)", tool)
		}
	}
}

var expr = regexp.MustCompile(`\$\{\{\s*([a-z_]+)\.([A-Za-z0-9_.-]+)\s*\}\}`)

// githubContext is the github context of the runs under test.
var githubContext = map[string]string{
	"actor": "octocat", "server_url": "https://github.com", "repository": "acme/shop", "run_id": "4242",
}

// actionRun is one run of the action's steps, as the runner would do it.
type actionRun struct {
	cmd     *exec.Cmd
	stdout  *syncBuffer
	outputs string // path of $GITHUB_OUTPUT
	summary string // path of $GITHUB_STEP_SUMMARY
}

// startAction starts the action's shell steps with inputs, evaluating the
// expressions of action.yml as GitHub does (inputs, their defaults, the
// github context), in bash as "shell: bash" runs them.
func startAction(t *testing.T, inputs map[string]string) *actionRun {
	t.Helper()
	a := readAction(t)
	dir, err := filepath.Abs(actionDir)
	if err != nil {
		t.Fatal(err)
	}
	eval := func(s string) string {
		return expr.ReplaceAllStringFunc(s, func(m string) string {
			p := expr.FindStringSubmatch(m)
			switch p[1] {
			case "inputs":
				in, ok := a.Inputs[p[2]]
				if !ok {
					t.Fatalf("action.yml uses input %q, which it does not declare", p[2])
				}
				if v, ok := inputs[p[2]]; ok {
					return v
				}
				return expr.ReplaceAllStringFunc(in.Default, func(m string) string { return githubContext[expr.FindStringSubmatch(m)[2]] })
			case "github":
				return githubContext[p[2]]
			}
			t.Fatalf("action.yml: expression %s is not evaluated by this test", m)
			return ""
		})
	}
	for name := range inputs {
		if _, ok := a.Inputs[name]; !ok {
			t.Fatalf("the test gives input %q, which action.yml does not declare", name)
		}
	}
	tmp := t.TempDir()
	r := &actionRun{stdout: &syncBuffer{}, outputs: filepath.Join(tmp, "output"), summary: filepath.Join(tmp, "summary")}
	var script strings.Builder
	env := append(os.Environ(), "GITHUB_ACTION_PATH="+dir, "GITHUB_OUTPUT="+r.outputs, "GITHUB_STEP_SUMMARY="+r.summary)
	for _, step := range a.Runs.Steps {
		if step.Shell != "bash" {
			t.Fatalf("step %s: shell %q, want bash", step.ID, step.Shell)
		}
		for k, v := range step.Env {
			env = append(env, k+"="+eval(v))
		}
		script.WriteString(step.Run + "\n")
	}
	// GitHub runs "shell: bash" as bash --noprofile --norc -eo pipefail {0}.
	r.cmd = exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script.String())
	r.cmd.Env = env
	r.cmd.Stdout, r.cmd.Stderr = r.stdout, r.stdout
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the runner signals the whole step
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.cmd.Process.Kill() })
	return r
}

// wait returns the exit code and the action's outputs, as action.yml maps
// them from the step's.
func (r *actionRun) wait(t *testing.T) (int, map[string]string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the action did not finish; it printed:\n%s", r.stdout)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	step := parseGitHubOutput(t, r.outputs)
	out := map[string]string{}
	for name, o := range readAction(t).Outputs {
		m := regexp.MustCompile(`^\$\{\{\s*steps\.gate\.outputs\.([a-z-]+)\s*\}\}$`).FindStringSubmatch(o.Value)
		if m == nil {
			t.Fatalf("output %s: value %q, want a step output of the gate step", name, o.Value)
		}
		out[name] = step[m[1]]
	}
	return code, out
}

// parseGitHubOutput reads $GITHUB_OUTPUT: name=value lines and
// name<<DELIMITER blocks.
func parseGitHubOutput(t *testing.T, path string) map[string]string {
	t.Helper()
	out := map[string]string{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if name, delim, ok := strings.Cut(line, "<<"); ok && !strings.Contains(name, "=") {
			var lines []string
			for sc.Scan() && sc.Text() != delim {
				lines = append(lines, sc.Text())
			}
			out[name] = strings.Join(lines, "\n")
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("$GITHUB_OUTPUT line %q is neither name=value nor name<<DELIMITER", line)
		}
		out[name] = value
	}
	return out
}

// The action's inputs and outputs are the ones the README documents.
func TestActionMetadata(t *testing.T) {
	a := readAction(t)
	if a.Runs.Using != "composite" {
		t.Errorf("runs.using %q, want composite", a.Runs.Using)
	}
	for _, name := range []string{"server", "api-token", "title", "details", "approvers", "groups", "policy", "timeout"} {
		if _, ok := a.Inputs[name]; !ok {
			t.Errorf("action.yml lacks input %s", name)
		}
	}
	for _, name := range []string{"status", "decided-by", "comment", "request-id"} {
		if _, ok := a.Outputs[name]; !ok {
			t.Errorf("action.yml lacks output %s", name)
		}
	}
}

// The action against a real bot on loopback: approved, it exits 0 with its
// outputs set.
func TestActionApproved(t *testing.T) {
	needTools(t, "bash", "curl", "jq")
	s := startServer(t, t.TempDir(), func(m *Main) { m.APIToken = "ci-token" })
	run := startAction(t, map[string]string{
		"server": s.url, "api-token": "ci-token", "title": "Deploy abc123 to production?", "details": "Fixes the checkout.",
		"approvers": "erin@example.com,\nfrank@example.com", "policy": "any", "timeout": "30m",
	})
	var links map[string]string
	eventually(t, "the emails", func() bool { links = outboxLinks(t, s.data); return len(links) == 2 })
	if status, _ := s.decide(getPage(t, links["erin@example.com"]), "approve", "1"); status != http.StatusOK {
		t.Fatalf("approve: status %d", status)
	}
	code, out := run.wait(t)
	if code != 0 {
		t.Fatalf("exit %d on approve, want 0; it printed:\n%s", code, run.stdout)
	}
	if out["status"] != "approved" || out["decided-by"] != "erin@example.com" || out["comment"] != "ship it" || out["request-id"] == "" {
		t.Errorf("outputs %v, want approved by erin with her comment and the request id", out)
	}
	r, err := apiclient.New(s.url, "ci-token").Get(context.Background(), out["request-id"])
	if err != nil {
		t.Fatal(err)
	}
	if r.Requester != "octocat" || r.Details != "Fixes the checkout." || r.ExpiresAt.Sub(r.CreatedAt) != 30*time.Minute ||
		len(r.Links) != 1 || r.Links[0].URL != "https://github.com/acme/shop/actions/runs/4242" {
		t.Errorf("the request %+v, want asked by the actor, with the details, 30 minutes and a link to the run", r)
	}
	for _, want := range []string{"Asked for approval: Deploy abc123 to production?", "vote: erin@example.com approved by email: ship it", "progress: 1 of 1 approvals", "Approved by erin@example.com: ship it"} {
		if !strings.Contains(run.stdout.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, run.stdout)
		}
	}
	if b, _ := os.ReadFile(run.summary); !bytes.Contains(b, []byte("approvalbot: approved")) {
		t.Errorf("the step summary is %q, want the outcome", b)
	}
}

// Rejected, the action fails the job; groups and the token work.
func TestActionRejected(t *testing.T) {
	needTools(t, "bash", "curl", "jq")
	s := startServer(t, t.TempDir(), nil)
	run := startAction(t, map[string]string{
		"server": s.url + "/", "title": "Drop the old orders table?", "groups": "dba:1=gina@example.com\nsecurity = sec@example.com",
	})
	var links map[string]string
	eventually(t, "the emails", func() bool { links = outboxLinks(t, s.data); return len(links) == 2 })
	if status, _ := s.decide(getPage(t, links["gina@example.com"]), "reject", "1"); status != http.StatusOK {
		t.Fatalf("reject: status %d", status)
	}
	code, out := run.wait(t)
	if code == 0 {
		t.Fatalf("exit 0 on reject, want the job to fail; it printed:\n%s", run.stdout)
	}
	if out["status"] != "rejected" || out["decided-by"] != "gina@example.com" || out["comment"] != "ship it" {
		t.Errorf("outputs %v, want rejected by gina", out)
	}
	if !strings.Contains(run.stdout.String(), "::error title=approvalbot::Rejected by gina@example.com") {
		t.Errorf("no error annotation for the rejection:\n%s", run.stdout)
	}
}

// A job canceled while waiting withdraws its request.
func TestActionJobCanceled(t *testing.T) {
	needTools(t, "bash", "curl", "jq")
	s := startServer(t, t.TempDir(), nil)
	run := startAction(t, map[string]string{"server": s.url, "title": "T", "approvers": "hal@example.com"})
	eventually(t, "the request", func() bool { return strings.Contains(run.stdout.String(), "expires:") })
	syscall.Kill(-run.cmd.Process.Pid, syscall.SIGTERM)
	run.wait(t)
	id := regexp.MustCompile(`request:\s+(\S+)`).FindStringSubmatch(run.stdout.String())[1]
	eventually(t, "the request to be canceled", func() bool { return s.get(id).Status == "canceled" })
	if r := s.get(id); r.Canceled == nil || r.Canceled.By != "github-actions" {
		t.Errorf("canceled %+v, want by github-actions", r.Canceled)
	}
}

// Bad input and an unreachable bot exit 2 with an error annotation, asking
// nothing.
func TestActionRefusals(t *testing.T) {
	needTools(t, "bash", "curl", "jq")
	s := startServer(t, t.TempDir(), func(m *Main) { m.APIToken = "ci-token" })
	for _, tc := range []struct {
		name   string
		inputs map[string]string
		want   string
	}{
		{"no title", map[string]string{"server": s.url, "api-token": "ci-token", "approvers": "a@example.com"}, "title"},
		{"bad timeout", map[string]string{"server": s.url, "api-token": "ci-token", "title": "T", "approvers": "a@example.com", "timeout": "soon"}, "timeout"},
		{"bad group", map[string]string{"server": s.url, "api-token": "ci-token", "title": "T", "groups": "no members here"}, "groups"},
		{"refused", map[string]string{"server": s.url, "api-token": "ci-token", "title": "T", "approvers": "not an address"}, "not a valid email address"},
		{"wrong token", map[string]string{"server": s.url, "api-token": "nope", "title": "T", "approvers": "a@example.com"}, "refused the API token"},
		{"unreachable", map[string]string{"server": "http://127.0.0.1:1", "title": "T", "approvers": "a@example.com"}, "cannot reach approvalbot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := startAction(t, tc.inputs)
			code, _ := run.wait(t)
			if code != 2 || !strings.Contains(run.stdout.String(), "::error title=approvalbot::") || !strings.Contains(run.stdout.String(), tc.want) {
				t.Errorf("exit %d, printed:\n%s\nwant exit 2 and an error annotation mentioning %q", code, run.stdout, tc.want)
			}
		})
	}
	if p, err := apiclient.New(s.url, "ci-token").List(context.Background(), apiclient.ListOptions{}); err != nil || len(p.Requests) != 0 {
		t.Errorf("after refused input: %v pending (%v), want none", p, err)
	}
}

// actionlint finds nothing in the README's workflow example using the
// action (which checks the action's metadata, its inputs and outputs), and
// shellcheck nothing in the action's script.
func TestActionLint(t *testing.T) {
	if testing.Short() {
		t.Skip("runs actionlint through go run; skipped under -short")
	}
	needTools(t, "shellcheck")
	// A project with the example as its workflow and the action beside it.
	example, err := os.ReadFile(filepath.Join(actionDir, "example-workflow.yml"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, example) {
		t.Errorf("README.md does not show scripts/github-action/example-workflow.yml as it is")
	}
	const remote = "your-org/approvalbot/scripts/github-action@main"
	if !bytes.Contains(example, []byte(remote)) {
		t.Fatalf("the example does not use %s", remote)
	}
	local := bytes.ReplaceAll(example, []byte(remote), []byte("./scripts/github-action"))
	meta, err := os.ReadFile(filepath.Join(actionDir, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	// actionlint checks the inputs given to a local action against its
	// metadata; a workflow giving one it does not declare proves it did.
	bogus := bytes.Replace(local, []byte("policy: any"), []byte("no-such-input: any"), 1)
	for name, tc := range map[string]struct {
		workflow []byte
		ok       bool
	}{"example": {local, true}, "control": {bogus, false}} {
		project := t.TempDir()
		for path, b := range map[string][]byte{
			".github/workflows/deploy.yml":     tc.workflow,
			"scripts/github-action/action.yml": meta,
			".git/HEAD":                        []byte("ref: refs/heads/main\n"), // how actionlint finds the project's root
		} {
			if err := os.MkdirAll(filepath.Join(project, filepath.Dir(path)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(project, path), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		lint := exec.Command("go", "run", "github.com/rhysd/actionlint/cmd/actionlint@v1.7.12", ".github/workflows/deploy.yml")
		lint.Dir = project
		lint.Env = append(os.Environ(), "GOWORK=off") // outside this module: the tool's own requirements
		out, err := lint.CombinedOutput()
		switch {
		case tc.ok && err != nil:
			t.Errorf("actionlint on the example: %v\n%s", err, out)
		case !tc.ok && !bytes.Contains(out, []byte(`input "no-such-input" is not defined in action "approvalbot approval gate"`)):
			t.Errorf("actionlint did not check the example's inputs against action.yml (%s): %v\n%s", name, err, out)
		}
	}
	if out, err := exec.Command("shellcheck", filepath.Join(actionDir, "gate.sh")).CombinedOutput(); err != nil {
		t.Errorf("shellcheck gate.sh: %v\n%s", err, out)
	}
}
