//go:build unix && !linux

package mototest

import "syscall"

func setDeathSignal(*syscall.SysProcAttr) {}
