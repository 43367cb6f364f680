package botproc

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Memory reads the process's peak and current resident set size in bytes
// (VmHWM and VmRSS) from /proc; ok is false where that is not available (not
// Linux, or the process has exited).
func (p *Proc) Memory() (peak, current int64, ok bool) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.Pid()), "status"))
	if err != nil {
		return 0, 0, false
	}
	return procStatusKB(string(raw), "VmHWM"), procStatusKB(string(raw), "VmRSS"), true
}

// CPU reads the CPU time (user and system, all threads) the process has used
// so far from /proc; ok is false where that is not available.
func (p *Proc) CPU() (time.Duration, bool) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.Pid()), "stat"))
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
