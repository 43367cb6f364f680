package approval

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// AuditLine is one line of an audit export: its number (from 1), and the
// entry read from it or why it could not be read.
type AuditLine struct {
	Line  int
	Entry AuditEntry
	Err   error
}

// AuditProblem is one place where the audit log is broken.
type AuditProblem struct {
	Line      int // the line of the broken entry (or of the checkpoint that found it)
	RequestID string
	Seq       int
	Kind      AuditKind
	What      string
}

func (p AuditProblem) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "line %d: ", p.Line)
	switch {
	case p.RequestID == "" && p.Seq > 0:
		fmt.Fprintf(&b, "checkpoint %d", p.Seq)
	case p.RequestID != "" && p.Seq > 0:
		fmt.Fprintf(&b, "request %s, entry %d", p.RequestID, p.Seq)
	case p.RequestID != "":
		fmt.Fprintf(&b, "request %s", p.RequestID)
	default:
		b.WriteString("entry")
	}
	if p.Kind != "" {
		fmt.Fprintf(&b, " (%s)", p.Kind)
	}
	b.WriteString(": " + p.What)
	return b.String()
}

// AuditReport is what VerifyAudit found.
type AuditReport struct {
	Entries     int // lines read as entries
	Requests    int // request chains
	Checkpoints int
	// Expired counts the requests sealed by a checkpoint that are gone
	// because they were past their retention.
	Expired int
	// Unsealed counts the request chains whose last entries no checkpoint
	// seals yet (written since the last checkpoint).
	Unsealed int
	// Problems are the broken places, in the order of their lines; the
	// first is the first broken entry.
	Problems []AuditProblem
}

// OK reports whether the log verified.
func (r AuditReport) OK() bool { return len(r.Problems) == 0 }

// located is an entry of a chain and its line.
type located struct {
	line int
	e    AuditEntry
}

// VerifyAudit checks an audit log, as exported, line by line: every entry's
// hash against its content, and every chain (each request's, and the
// checkpoints') for entries in order 1, 2, 3 … each holding the hash of the
// one before. A gap is a deleted entry, an entry before a lower one of its
// chain a reordering, a hash that does not match an edit. Then every head
// sealed by a checkpoint must be in the log with the same hash, unless its
// request is past its retention at now: so a truncated chain, or a request
// removed as a whole, is found too. It reports at most one problem per chain:
// the first.
func VerifyAudit(lines []AuditLine, now time.Time) AuditReport {
	var rep AuditReport
	chains := map[string][]located{}
	var order []string // chains in order of first appearance
	for _, l := range lines {
		if l.Err != nil {
			rep.Problems = append(rep.Problems, AuditProblem{Line: l.Line, What: "not an audit entry: " + l.Err.Error()})
			continue
		}
		rep.Entries++
		id := l.Entry.RequestID
		if _, ok := chains[id]; !ok {
			order = append(order, id)
		}
		chains[id] = append(chains[id], located{l.Line, l.Entry})
	}
	broken := map[string]bool{}
	for _, id := range order {
		if id == "" {
			rep.Checkpoints = len(chains[id])
		} else {
			rep.Requests++
		}
		if p, ok := verifyChain(chains[id], now); !ok {
			rep.Problems = append(rep.Problems, p)
			broken[id] = true
		}
	}
	sealed := map[string]int{} // request → highest seq a checkpoint seals
	for _, cp := range chains[""] {
		if broken[""] && cp.e.Hash != cp.e.ComputeHash() {
			continue // an edited checkpoint seals nothing
		}
		for _, h := range cp.e.Heads {
			sealed[h.RequestID] = max(sealed[h.RequestID], h.Seq)
			if p, ok := verifyHead(h, cp, chains[h.RequestID], now, &rep); !ok && !broken[h.RequestID] {
				rep.Problems = append(rep.Problems, p)
				broken[h.RequestID] = true
			}
		}
	}
	for _, id := range order {
		if c := chains[id]; id != "" && c[len(c)-1].e.Seq > sealed[id] {
			rep.Unsealed++
		}
	}
	slices.SortStableFunc(rep.Problems, func(a, b AuditProblem) int { return a.Line - b.Line })
	return rep
}

// verifyChain checks one chain, in the order of its lines, and returns its
// first problem.
func verifyChain(c []located, now time.Time) (AuditProblem, bool) {
	problem := func(l located, format string, args ...any) (AuditProblem, bool) {
		return AuditProblem{Line: l.line, RequestID: l.e.RequestID, Seq: l.e.Seq, Kind: l.e.Kind, What: fmt.Sprintf(format, args...)}, false
	}
	at := map[int]int{} // seq → index of its first line
	for i, l := range c {
		if _, ok := at[l.e.Seq]; !ok {
			at[l.e.Seq] = i
		}
	}
	var first []AuditProblem
	// Every entry's own hash.
	for _, l := range c {
		if l.e.Hash != l.e.ComputeHash() {
			p, _ := problem(l, "its hash does not match its content: the entry was edited")
			first = append(first, p)
			break
		}
	}
	// The chain's order and links.
	start := 1
	if c[0].e.RequestID == "" {
		// The oldest checkpoints may be gone with their retention.
		low := c[0].e.Seq
		for _, l := range c {
			low = min(low, l.e.Seq)
		}
		if l := c[at[low]]; low > 1 && !l.e.PrevKeepUntil.IsZero() && now.After(l.e.PrevKeepUntil) {
			start = low
		}
	}
	expect, prev := start, ""
	seen := map[int]bool{}
	for i, l := range c {
		seq := l.e.Seq
		var p AuditProblem
		ok := true
		switch {
		case seen[seq]:
			p, ok = problem(l, "appears twice")
		case seq < expect:
			p, ok = problem(l, "comes after entry %d: the entries were reordered", expect-1)
		case seq > expect:
			if j, later := firstOf(at, expect, seq); later && j > i {
				p, ok = problem(l, "comes before entry %d: the entries were reordered", c[j].e.Seq)
			} else if seq == expect+1 {
				p, ok = problem(l, "entry %d is missing before it: an entry was deleted", expect)
			} else {
				p, ok = problem(l, "entries %d to %d are missing before it: entries were deleted", expect, seq-1)
			}
		case seq != start && l.e.Prev != prev:
			// The entry before was replaced by another with a hash of its
			// own: name it.
			before := c[at[seq-1]]
			p, ok = problem(before, "entry %d records another hash for it: the entry was edited or replaced", seq)
		case seq == 1 && l.e.Prev != "":
			p, ok = problem(l, "the first entry of the chain names a previous one: entries before it were deleted")
		}
		if !ok {
			first = append(first, p)
			break
		}
		seen[seq] = true
		expect, prev = seq+1, l.e.Hash
	}
	if len(first) == 0 {
		return AuditProblem{}, true
	}
	slices.SortStableFunc(first, func(a, b AuditProblem) int { return a.Line - b.Line })
	return first[0], false
}

// firstOf returns the index of the earliest line holding a seq in [from,
// to), and whether there is one.
func firstOf(at map[int]int, from, to int) (int, bool) {
	best, found := 0, false
	for s := from; s < to; s++ {
		if i, ok := at[s]; ok && (!found || i < best) {
			best, found = i, true
		}
	}
	return best, found
}

// verifyHead checks that the head h, sealed by checkpoint cp, is in chain c.
func verifyHead(h AuditHead, cp located, c []located, now time.Time, rep *AuditReport) (AuditProblem, bool) {
	p := AuditProblem{Line: cp.line, RequestID: h.RequestID, Seq: h.Seq}
	if len(c) == 0 {
		if !h.KeepUntil.IsZero() && now.After(h.KeepUntil) {
			rep.Expired++
			return p, true
		}
		p.What = fmt.Sprintf("the request, sealed by checkpoint %d, is missing: it was deleted", cp.e.Seq)
		return p, false
	}
	for _, l := range c {
		if l.e.Seq == h.Seq {
			if l.e.Hash != h.Hash {
				p.Line, p.Kind = l.line, l.e.Kind
				p.What = fmt.Sprintf("differs from the entry checkpoint %d sealed: the entry was edited or replaced", cp.e.Seq)
				return p, false
			}
			return p, true
		}
	}
	p.What = fmt.Sprintf("sealed by checkpoint %d, is missing: the chain was cut short", cp.e.Seq)
	return p, false
}
