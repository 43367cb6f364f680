package storetest

import (
	"errors"
	"testing"
	"time"

	"approvalbot/bot/approval"

	"github.com/google/go-cmp/cmp"
)

// pending is the query of a page of pending requests.
func pending(cursor string, limit int) approval.Query {
	return approval.Query{Status: approval.ListStatus(approval.StatusPending), Cursor: cursor, Limit: limit}
}

// listAll pages through q (limit per page) and returns the IDs in order. It
// fails the test when a page is longer than its limit or the listing does not
// end.
func listAll(t *testing.T, s approval.Store, q approval.Query, limit int) []string {
	t.Helper()
	q.Limit = limit
	var got []string
	for page := 0; ; page++ {
		if page > 200 {
			t.Fatalf("List %+v does not end", q)
		}
		rs, next, err := s.List(t.Context(), q.Normalized())
		if err != nil {
			t.Fatalf("List %+v page %d: %v", q, page, err)
		}
		if len(rs) > limit {
			t.Fatalf("List page %d: %d requests, limit %d", page, len(rs), limit)
		}
		for _, r := range rs {
			if !q.Match(r) {
				t.Errorf("List %+v returned %s (status %s, requester %s, created %s), which does not match", q, r.ID, r.Status, r.Requester, r.CreatedAt)
			}
		}
		got = append(got, ids(rs)...)
		if next == "" {
			return got
		}
		q.Cursor = next
	}
}

// closeAs closes r (as stored) with status st, as the core would: a decision
// for approved and rejected, a cancellation for canceled, nothing for
// expired.
func closeAs(t *testing.T, s approval.Store, r *approval.Request, st approval.Status, at time.Time) {
	t.Helper()
	c := get(t, s, r.ID)
	c.Status = st
	switch st {
	case approval.StatusApproved, approval.StatusRejected:
		choice := approval.Approve
		if st == approval.StatusRejected {
			choice = approval.Reject
		}
		c.Votes = append(c.Votes, approval.Vote{By: "bob@example.com", Channel: approval.ChannelEmail, Choice: choice, At: at, Groups: []string{"eng"}})
		c.Decision = &approval.Decision{Choice: choice, By: "bob@example.com", Channel: approval.ChannelEmail, At: at}
	case approval.StatusCanceled:
		c.Reason = approval.ReasonCanceled
		c.Canceled = &approval.Cancellation{By: "ci@example.com", Reason: "not needed", At: at}
	}
	update(t, s, c)
}

func testListByStatus(t *testing.T, s approval.Store) {
	statuses := []approval.Status{
		approval.StatusPending, approval.StatusApproved, approval.StatusRejected, approval.StatusExpired, approval.StatusCanceled,
	}
	want := map[approval.ListStatus][]string{} // newest first
	for i := range 15 {
		r := Fixture(Base.Add(time.Duration(i) * time.Second))
		create(t, s, r)
		st := statuses[i%len(statuses)]
		if st != approval.StatusPending {
			closeAs(t, s, r, st, Base.Add(time.Minute))
			want[approval.StatusClosed] = append([]string{r.ID}, want[approval.StatusClosed]...)
		}
		want[approval.ListStatus(st)] = append([]string{r.ID}, want[approval.ListStatus(st)]...)
	}
	for _, ls := range []approval.ListStatus{"pending", "approved", "rejected", "expired", "canceled", "closed"} {
		for _, limit := range []int{1, 2, 50} {
			got := listAll(t, s, approval.Query{Status: ls}, limit)
			if diff := cmp.Diff(want[ls], got); diff != "" {
				t.Errorf("List status %s, %d a page (-want +got):\n%s", ls, limit, diff)
			}
		}
	}
}

func testListFilters(t *testing.T, s approval.Store) {
	type made struct {
		id                  string
		closed              bool
		requester, approver string
		at                  time.Time
	}
	var all []made // oldest first
	for i := range 12 {
		at := Base.Add(time.Duration(i) * time.Minute)
		r := Fixture(at)
		m := made{id: r.ID, at: at, requester: "ci@example.com", approver: "alice@example.com"}
		if i%3 == 0 {
			r.Requester, m.requester = "Deployer@Example.com", "deployer@example.com"
		}
		if i%2 == 0 {
			// carol instead of alice: alice is in no group and no vote.
			r.Approvers = []string{"carol@example.com", "bob@example.com", "U0SEC00001"}
			r.Rule.Groups = []approval.Group{
				{Name: "eng", Approvers: []string{"carol@example.com", "bob@example.com"}, Min: 1},
				{Name: "security", Approvers: []string{"U0SEC00001"}, Min: 1},
			}
			m.approver = "carol@example.com"
		}
		create(t, s, r)
		if i%4 == 1 {
			closeAs(t, s, r, approval.StatusApproved, at.Add(time.Second))
			m.closed = true
		}
		all = append(all, m)
	}
	expect := func(keep func(m made) bool) []string {
		var out []string
		for i := len(all) - 1; i >= 0; i-- {
			if keep(all[i]) {
				out = append(out, all[i].id)
			}
		}
		return out
	}
	since, until := Base.Add(3*time.Minute), Base.Add(9*time.Minute)
	tests := []struct {
		name string
		q    approval.Query
		keep func(m made) bool
	}{
		{"approver alice (any case)", approval.Query{Approver: approval.Identity{ID: "ALICE@example.com"}},
			func(m made) bool { return !m.closed && m.approver == "alice@example.com" }},
		{"approver by Slack profile email", approval.Query{Approver: approval.Identity{ID: "U0NOBODY01", Email: "carol@example.com"}},
			func(m made) bool { return !m.closed && m.approver == "carol@example.com" }},
		{"approver by Slack user ID, closed", approval.Query{Status: approval.StatusClosed, Approver: approval.Identity{ID: "U0SEC00001"}},
			func(m made) bool { return m.closed }},
		{"requester (any case)", approval.Query{Requester: "deployer@example.COM"},
			func(m made) bool { return !m.closed && m.requester == "deployer@example.com" }},
		{"requester, closed", approval.Query{Status: approval.StatusClosed, Requester: "ci@example.com"},
			func(m made) bool { return m.closed && m.requester == "ci@example.com" }},
		{"since and until", approval.Query{Since: since, Until: until},
			func(m made) bool { return !m.closed && !m.at.Before(since) && m.at.Before(until) }},
		{"since only, every filter", approval.Query{Since: since, Requester: "ci@example.com", Approver: approval.Identity{ID: "bob@example.com"}},
			func(m made) bool { return !m.closed && !m.at.Before(since) && m.requester == "ci@example.com" }},
		{"until only, closed", approval.Query{Status: approval.StatusClosed, Until: until},
			func(m made) bool { return m.closed && m.at.Before(until) }},
		{"nobody", approval.Query{Approver: approval.Identity{ID: "mallory@example.com"}},
			func(m made) bool { return false }},
	}
	for _, tt := range tests {
		want := expect(tt.keep)
		for _, limit := range []int{1, 3, 100} {
			if diff := cmp.Diff(want, listAll(t, s, tt.q, limit)); diff != "" {
				t.Errorf("%s, %d a page (-want +got):\n%s", tt.name, limit, diff)
			}
		}
	}
}

// testListCursorStable pages through the pending and the closed requests
// while requests are created and closed between pages: every request that
// matches from the first page to the last is listed exactly once, and no
// request twice.
func testListCursorStable(t *testing.T, s approval.Store) {
	for _, ls := range []approval.ListStatus{approval.ListStatus(approval.StatusPending), approval.StatusClosed} {
		t.Run(string(ls), func(t *testing.T) {
			base := Base.Add(time.Duration(len(ls)) * time.Hour) // apart from the other run's requests
			var reqs []*approval.Request                         // oldest first
			for i := range 30 {
				r := Fixture(base.Add(time.Duration(i) * time.Second))
				create(t, s, r)
				if ls == approval.StatusClosed && i%5 != 0 {
					closeAs(t, s, r, approval.StatusRejected, base.Add(time.Hour))
				}
				reqs = append(reqs, r)
			}
			q := approval.Query{Status: ls, Since: base, Until: base.Add(time.Hour), Limit: 4}
			before := listAll(t, s, q, 4)
			seen := map[string]int{}
			changed := map[string]bool{} // requests whose membership changed during the listing
			n := 0
			for page := 0; ; page++ {
				rs, next, err := s.List(t.Context(), q)
				if err != nil {
					t.Fatalf("List page %d: %v", page, err)
				}
				for _, r := range rs {
					seen[r.ID]++
				}
				// Between pages: a new request, newer and older than the
				// cursor; and a request of the listing changes.
				for _, at := range []time.Duration{59 * time.Minute, time.Duration(page) * time.Second / 2} {
					r := Fixture(base.Add(at).Add(time.Millisecond * time.Duration(page+1)))
					create(t, s, r)
					changed[r.ID] = true
					if ls == approval.StatusClosed {
						closeAs(t, s, r, approval.StatusApproved, base.Add(time.Hour))
					}
				}
				for ; n < len(reqs); n++ {
					r := reqs[(n*7)%len(reqs)] // 7 and 30 are coprime: every request once
					if get(t, s, r.ID).Status == approval.StatusPending {
						closeAs(t, s, r, approval.StatusExpired, base.Add(time.Hour))
						changed[r.ID] = true
						break
					}
				}
				n++
				if next == "" {
					break
				}
				if page > 40 {
					t.Fatal("the listing does not end")
				}
				q.Cursor = next
			}
			for id, k := range seen {
				if k > 1 {
					t.Errorf("request %s listed %d times", id, k)
				}
			}
			for _, id := range before {
				if !changed[id] && seen[id] != 1 {
					t.Errorf("request %s matches throughout but was listed %d times", id, seen[id])
				}
			}
		})
	}
}

func testListInvalidCursor(t *testing.T, s approval.Store) {
	for _, c := range []string{"not a cursor", "%%%", "eyJ4IjoxfQ"} {
		for _, ls := range []approval.ListStatus{approval.ListStatus(approval.StatusPending), approval.StatusClosed} {
			_, _, err := s.List(t.Context(), approval.Query{Status: ls, Cursor: c, Limit: 10})
			if !errors.Is(err, approval.ErrInvalid) {
				t.Errorf("List %s with cursor %q: got %v, want ErrInvalid", ls, c, err)
			}
		}
	}
}
