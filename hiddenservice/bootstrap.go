package hiddenservice

import (
	"fmt"
	"strconv"
	"strings"
)

// Bootstrap is how far tor has got in joining the network, from GETINFO
// status/bootstrap-phase or a STATUS_CLIENT BOOTSTRAP event.
type Bootstrap struct {
	// Progress is a percentage; 100 means tor can build circuits.
	Progress int
	// Tag and Summary name the phase ("done", "Done").
	Tag, Summary string
	// Warning, Reason and Recommendation are set when tor is stuck: a
	// description, a keyword (CLOCK_SKEW, CONNECTREFUSED, ...) and
	// "ignore" or "warn". Empty when all is well.
	Warning, Reason, Recommendation string
}

// ParseBootstrap parses tor's bootstrap status line, such as
//
//	NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"
//	WARN BOOTSTRAP PROGRESS=5 TAG=conn SUMMARY="Connecting to a relay" WARNING="Connection refused" REASON=CONNECTREFUSED COUNT=3 RECOMMENDATION=ignore
func ParseBootstrap(s string) (Bootstrap, error) {
	_, action, args, err := parseStatusLine(s)
	if err == nil && action != "BOOTSTRAP" {
		err = fmt.Errorf("action %q, want BOOTSTRAP", action)
	}
	if err != nil {
		return Bootstrap{}, fmt.Errorf("hiddenservice: bootstrap status %q: %w", s, err)
	}
	p, err := strconv.Atoi(args["PROGRESS"])
	if err != nil || p < 0 || p > 100 {
		return Bootstrap{}, fmt.Errorf("hiddenservice: bootstrap status %q: PROGRESS not a percentage", s)
	}
	return Bootstrap{
		Progress: p, Tag: args["TAG"], Summary: args["SUMMARY"],
		Warning: args["WARNING"], Reason: args["REASON"], Recommendation: args["RECOMMENDATION"],
	}, nil
}

// parseStatusLine splits "SEVERITY ACTION KEY=VALUE ..." where a value
// may be a quoted string with backslash escapes, as tor writes status
// events and GETINFO status/* values. (bine's ParseStatusEvent splits
// quoted values at their spaces.)
func parseStatusLine(s string) (severity, action string, args map[string]string, err error) {
	severity, rest, _ := strings.Cut(strings.TrimSpace(s), " ")
	action, rest, _ = strings.Cut(rest, " ")
	if severity == "" || action == "" {
		return "", "", nil, fmt.Errorf("want SEVERITY ACTION ARGS")
	}
	args = map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimSpace(rest) {
		var k, v string
		if k, v, rest, err = nextArg(rest); err != nil {
			return "", "", nil, err
		}
		args[k] = v
	}
	return severity, action, args, nil
}

// nextArg reads one KEY=VALUE or KEY="QUOTED VALUE" off s.
func nextArg(s string) (key, val, rest string, err error) {
	eq := strings.IndexAny(s, "= ")
	if eq < 0 || s[eq] == ' ' {
		key, rest, _ = strings.Cut(s, " ")
		return key, "", rest, nil // a bare keyword
	}
	key, s = s[:eq], s[eq+1:]
	if !strings.HasPrefix(s, `"`) {
		val, rest, _ = strings.Cut(s, " ")
		return key, val, rest, nil
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i++; i < len(s) {
				b.WriteByte(s[i])
			}
		case '"':
			return key, b.String(), s[i+1:], nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", "", fmt.Errorf("%s: unterminated quoted value", key)
}

// clockSkew describes a CLOCK_SKEW status event's arguments in words,
// or returns "" for other events.
func clockSkew(action string, args map[string]string) string {
	if action != "CLOCK_SKEW" {
		return ""
	}
	skew := args["SKEW"]
	if skew == "" {
		skew = args["MIN_SKEW"]
	}
	secs, err := strconv.Atoi(skew)
	if err != nil {
		return "tor reports a clock skew (source " + args["SOURCE"] + "): check the node's clock"
	}
	dir := "ahead of"
	if secs < 0 {
		dir, secs = "behind", -secs
	}
	return fmt.Sprintf("the node's clock is about %ds %s the network's (source %s): tor needs a correct clock", secs, dir, args["SOURCE"])
}
