package mototest

import (
	"os/exec"
	"sync"
	"time"
)

// process is a running moto_server.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	once sync.Once
}

func startProcess(cmd *exec.Cmd) (*process, error) {
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop ends the process (and any child it started), politely first.
func (p *process) stop() {
	p.once.Do(func() {
		terminate(p.cmd)
		select {
		case <-p.done:
			return
		case <-time.After(5 * time.Second):
		}
		kill(p.cmd)
		<-p.done
	})
}
