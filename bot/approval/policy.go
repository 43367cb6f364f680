package approval

import "strings"

// Policy says how many answers decide a request. Only "any" (the first answer
// decides) is supported today; the field exists so that "all" and "quorum:N" can
// be added without changing the payload.
type Policy string

// PolicyAny: the first answer decides.
const PolicyAny Policy = "any"

// ParsePolicy validates a policy name; the empty string means PolicyAny.
func ParsePolicy(s string) (Policy, error) {
	switch p := strings.ToLower(strings.TrimSpace(s)); {
	case p == "" || p == string(PolicyAny):
		return PolicyAny, nil
	case p == "all" || strings.HasPrefix(p, "quorum:"):
		return "", Invalidf("policy", "policy %q is not supported yet; use \"any\"", s)
	}
	return "", Invalidf("policy", "policy %q is unknown; use \"any\"", s)
}
