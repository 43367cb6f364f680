package motoserver

import "syscall"

// setDeathSignal makes the kernel stop moto_server if the test binary dies
// without cleaning up (a panic, a -timeout).
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
