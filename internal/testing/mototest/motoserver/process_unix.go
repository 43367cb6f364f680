//go:build unix

package motoserver

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts moto_server in a process group of its own, so that stopping
// it also stops anything a launcher script (pyenv, a virtualenv shim) started.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(cmd.SysProcAttr)
}

func terminate(cmd *exec.Cmd) { syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }

func kill(cmd *exec.Cmd) { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
