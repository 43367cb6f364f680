package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// bot is the approvalbot server running as a child process on 127.0.0.1.
type bot struct {
	cmd  *exec.Cmd
	url  string // http://127.0.0.1:port
	data string // its data folder
	done chan error
}

// startBot runs bin as the server on a free 127.0.0.1 port over the data
// folder data, and waits until it says where it listens. Its log goes to
// logPath. The environment is this process's without any APPROVALBOT_ or SLACK_
// variable, so the bot writes mail to its outbox and talks to nobody else.
func startBot(ctx context.Context, bin, data, logPath, logLevel string) (*bot, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("bot log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-data", data)
	cmd.Env = append(cleanEnv(os.Environ()), "APPROVALBOT_LOG_LEVEL="+logLevel)
	cmd.Stderr = logFile
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start bot: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bot %s: %w", bin, err)
	}
	b := &bot{cmd: cmd, data: data, done: make(chan error, 1)}

	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "approvalbot listening on "); ok {
				addr <- strings.TrimSpace(a)
				break
			}
		}
		io.Copy(io.Discard, out)
		b.done <- cmd.Wait()
	}()
	select {
	case a := <-addr:
		host, _, err := net.SplitHostPort(a)
		if err != nil || !net.ParseIP(host).IsLoopback() {
			b.kill()
			return nil, fmt.Errorf("the bot listens on %q, not on a loopback address", a)
		}
		b.url = "http://" + a
		return b, nil
	case err := <-b.done:
		return nil, fmt.Errorf("the bot exited before listening (%v); see %s", err, logPath)
	case <-time.After(30 * time.Second):
		b.kill()
		return nil, fmt.Errorf("the bot did not start within 30s; see %s", logPath)
	case <-ctx.Done():
		b.kill()
		return nil, ctx.Err()
	}
}

// cleanEnv drops the bot's own settings (SMTP, Slack, API token...) from env.
func cleanEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "APPROVALBOT_") || strings.HasPrefix(kv, "SLACK_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// stop interrupts the bot (a clean shutdown that closes the database) and
// waits for it to exit, killing it if it takes too long.
func (b *bot) stop() error {
	if err := b.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		b.kill()
		return fmt.Errorf("stop bot: %w", err)
	}
	select {
	case err := <-b.done:
		if err != nil {
			return fmt.Errorf("bot exited: %w", err)
		}
		return nil
	case <-time.After(20 * time.Second):
		b.kill()
		return errors.New("the bot did not stop within 20s after an interrupt; killed")
	}
}

func (b *bot) kill() {
	b.cmd.Process.Kill()
}

// memory reads the process's peak and current resident set size in bytes
// from /proc (Linux); ok is false where that is not available.
func (b *bot) memory() (peak, current int64, ok bool) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(b.cmd.Process.Pid), "status"))
	if err != nil {
		return 0, 0, false
	}
	return procStatusKB(string(raw), "VmHWM"), procStatusKB(string(raw), "VmRSS"), true
}

// cpu reads the CPU time (user and system, all threads) the process has used
// so far from /proc (Linux); ok is false where that is not available.
func (b *bot) cpu() (time.Duration, bool) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(b.cmd.Process.Pid), "stat"))
	if err != nil {
		return 0, false
	}
	return procStatCPU(string(raw))
}

// procStatCPU returns utime + stime of a /proc/<pid>/stat line. Both are
// in USER_HZ ticks, which Linux fixes at 100 a second for user space.
func procStatCPU(stat string) (time.Duration, bool) {
	// The command name (field 2) is in parentheses and may hold spaces:
	// count the fields after its closing one, where field 3 is the first.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * (time.Second / 100), true
}

// procStatusKB returns the value of a "Key:   123 kB" line of /proc/<pid>/status
// in bytes, or 0.
func procStatusKB(status, key string) int64 {
	for line := range strings.Lines(status) {
		v, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0
		}
		return n << 10
	}
	return 0
}

// fileSize is the size of path, or 0 if it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
