package hiddenservice

import (
	"strings"
	"testing"
)

func TestParseBootstrap(t *testing.T) {
	for in, want := range map[string]Bootstrap{
		`NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`: {Progress: 100, Tag: "done", Summary: "Done"},
		`NOTICE BOOTSTRAP PROGRESS=50 TAG=loading_descriptors SUMMARY="Loading relay descriptors"`: {
			Progress: 50, Tag: "loading_descriptors", Summary: "Loading relay descriptors"},
		`WARN BOOTSTRAP PROGRESS=5 TAG=conn SUMMARY="Connecting to a relay" WARNING="Connection refused" REASON=CONNECTREFUSED COUNT=3 RECOMMENDATION=ignore HOSTID="0000" HOSTADDR="127.0.0.1:9"`: {
			Progress: 5, Tag: "conn", Summary: "Connecting to a relay", Warning: "Connection refused", Reason: "CONNECTREFUSED", Recommendation: "ignore"},
		`WARN BOOTSTRAP PROGRESS=14 TAG=handshake SUMMARY="Handshaking with a relay" WARNING="Clock skew -7200 in NETINFO cell from OR" REASON=CLOCK_SKEW COUNT=1 RECOMMENDATION=warn`: {
			Progress: 14, Tag: "handshake", Summary: "Handshaking with a relay", Warning: "Clock skew -7200 in NETINFO cell from OR", Reason: "CLOCK_SKEW", Recommendation: "warn"},
		`NOTICE BOOTSTRAP PROGRESS=0 TAG=starting SUMMARY="say \"hi\" \\ there"`: {Tag: "starting", Summary: `say "hi" \ there`},
	} {
		got, err := ParseBootstrap(in)
		if err != nil || got != want {
			t.Errorf("ParseBootstrap(%s) = %+v, %v, want %+v", in, got, err, want)
		}
	}
}

func TestParseBootstrapRejects(t *testing.T) {
	for _, in := range []string{
		"", "NOTICE", `NOTICE CLOCK_SKEW SKEW=1`, `NOTICE BOOTSTRAP PROGRESS=abc`,
		`NOTICE BOOTSTRAP PROGRESS=101`, `NOTICE BOOTSTRAP PROGRESS=5 SUMMARY="unterminated`,
	} {
		if _, err := ParseBootstrap(in); err == nil {
			t.Errorf("ParseBootstrap(%q) succeeded", in)
		}
	}
}

func TestClockSkew(t *testing.T) {
	for in, want := range map[string]string{
		"WARN CLOCK_SKEW SKEW=-7200 SOURCE=OR:127.0.0.1:5000": "7200s behind",
		"WARN CLOCK_SKEW SKEW=600 SOURCE=DIRSERV:1.2.3.4:80":  "600s ahead of",
		"WARN CLOCK_SKEW MIN_SKEW=-3600 SOURCE=CONSENSUS":     "3600s behind",
		"WARN CLOCK_SKEW SOURCE=CONSENSUS":                    "check the node's clock",
		"NOTICE CIRCUIT_ESTABLISHED":                          "",
	} {
		_, action, args, err := parseStatusLine(in)
		if err != nil {
			t.Fatalf("parseStatusLine(%q): %v", in, err)
		}
		got := clockSkew(action, args)
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("clockSkew(%s) = %q, want it to say %q", in, got, want)
		}
	}
}

func FuzzParseBootstrap(f *testing.F) {
	f.Add(`NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`)
	f.Add(`WARN BOOTSTRAP PROGRESS=5 WARNING="a \"b\"" REASON=X`)
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBootstrap(s)
		if err == nil && (b.Progress < 0 || b.Progress > 100) {
			t.Errorf("ParseBootstrap(%q) = progress %d", s, b.Progress)
		}
	})
}
