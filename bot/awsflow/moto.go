package awsflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// MotoInstall is the command that installs the moto server this package expects.
const MotoInstall = `pip install "moto[server]==5.2.1"`

// Moto is a moto_server process started by StartMoto (tests use package
// mototest instead).
type Moto struct {
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
	out  bytes.Buffer
}

// StartMoto runs `moto_server -H 127.0.0.1 -p <free port>` with env added to its
// environment, waits until it answers and enables Step Functions execution.
func StartMoto(ctx context.Context, env []string) (*Moto, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, fmt.Errorf("moto_server is not on PATH; install it with: %s", MotoInstall)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	m := &Moto{URL: "http://127.0.0.1:" + strconv.Itoa(port), done: make(chan struct{})}
	m.cmd = exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	m.cmd.Env = append(os.Environ(), env...)
	m.cmd.Stdout, m.cmd.Stderr = &m.out, &m.out
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moto_server: %w", err)
	}
	go func() { m.cmd.Wait(); close(m.done) }()
	wait, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := m.post(wait, "/moto-api/config", map[string]any{"stepfunctions": map[string]any{"execute_state_machine": true}}); err == nil {
			return m, nil
		}
		select {
		case <-m.done:
			return nil, fmt.Errorf("moto_server exited: %s", strings.TrimSpace(m.out.String()))
		case <-wait.Done():
			m.Stop()
			return nil, fmt.Errorf("moto_server did not answer on port %d: %w", port, wait.Err())
		case <-tick.C:
		}
	}
}

// Stop ends the moto_server process and its children.
func (m *Moto) Stop() {
	if m.cmd.Process == nil {
		return
	}
	syscall.Kill(-m.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.done
	}
}

func (m *Moto) post(ctx context.Context, path string, body any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("POST %s: %s", path, resp.Status)
	}
	return nil
}

// Mail is one message sent through SES, as moto keeps it (its HTML part).
type Mail struct {
	From, Subject, Body string
	To                  []string
}

// SentMail returns the messages moto's SES has sent, oldest first.
func (m *Moto) SentMail(ctx context.Context) ([]Mail, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+"/moto-api/data.json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("GET /moto-api/data.json: " + resp.Status)
	}
	var data struct {
		SES struct {
			Message []struct {
				Source       string              `json:"source"`
				Subject      string              `json:"subject"`
				Body         string              `json:"body"`
				Destinations map[string][]string `json:"destinations"`
			} `json:"Message"`
		} `json:"ses"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&data); err != nil {
		return nil, fmt.Errorf("decode /moto-api/data.json: %w", err)
	}
	var out []Mail
	for _, msg := range data.SES.Message {
		out = append(out, Mail{From: msg.Source, Subject: msg.Subject, Body: msg.Body, To: msg.Destinations["ToAddresses"]})
	}
	return out, nil
}
