package manifest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// with is the smallest valid manifest plus extra fields.
func with(extra string) string {
	if extra != "" {
		extra = ", " + extra
	}
	return `{"version": 1, "name": "app", "command": ["/bin/app"]` + extra + `}`
}

func minimal(change func(m *Manifest)) *Manifest {
	m := &Manifest{Version: 1, Name: "app", Command: []string{"/bin/app"}}
	if change != nil {
		change(m)
	}
	return m
}

func TestParseManifestGood(t *testing.T) {
	for _, tc := range []struct {
		json string
		want *Manifest
	}{
		{with(""), minimal(nil)},
		{with(`"env": {"A_1": "x", "b": ""}, "workdir": "/srv"`), minimal(func(m *Manifest) {
			m.Env, m.Workdir = map[string]string{"A_1": "x", "b": ""}, "/srv"
		})},
		{with(`"env": {}, "volumes": [], "ports": []`), minimal(nil)}, // empty is absent
		{with(`"user": "www-data"`), minimal(func(m *Manifest) { m.User = "www-data" })},
		{with(`"user": "1000:1000"`), minimal(func(m *Manifest) { m.User = "1000:1000" })},
		{with(`"restart": {"policy": "on-failure", "no_restart_codes": [3], "restart_codes": [0],
			"delay": "2s", "max_delay": "1m", "reset_after": "30s"}`), minimal(func(m *Manifest) {
			m.Restart = Restart{Policy: RestartOnFailure, NoRestartCodes: []int{3}, RestartCodes: []int{0},
				Delay: Duration{2 * time.Second}, MaxDelay: Duration{time.Minute}, ResetAfter: Duration{30 * time.Second}}
		})},
		{with(`"restart": {"policy": "never", "no_restart_codes": []}`), minimal(func(m *Manifest) { m.Restart.Policy = RestartNever })},
		{with(`"stop": {"signal": "SIGINT", "timeout": "5s"}`), minimal(func(m *Manifest) {
			m.Stop = Stop{Signal: "SIGINT", Timeout: Duration{5 * time.Second}}
		})},
		{with(`"stop": {"signal": "term"}`), minimal(func(m *Manifest) { m.Stop.Signal = "term" })},
		{with(`"isolation": {"minimum": "namespaces", "namespaces": ["pid", "net"], "network": "private"}`),
			minimal(func(m *Manifest) {
				m.Isolation = Isolation{Minimum: "namespaces", Namespaces: []string{"pid", "net"}, Network: "private"}
			})},
		{with(`"resources": {"memory": "256M", "pids": 100, "cpu_weight": 200, "rlimits": {"nofile": 1024}}`),
			minimal(func(m *Manifest) {
				m.Resources = Resources{Memory: 256 << 20, Pids: 100, CPUWeight: 200, Rlimits: map[string]uint64{"nofile": 1024}}
			})},
		{with(`"resources": {"memory": 8388608}`), minimal(func(m *Manifest) { m.Resources.Memory = 8 << 20 })},
		{with(`"resources": {"memory": "8192KiB"}`), minimal(func(m *Manifest) { m.Resources.Memory = 8 << 20 })},
		{with(`"volumes": [{"name": "data", "path": "/var/lib/app"}]`), minimal(func(m *Manifest) {
			m.Volumes = []Volume{{Name: "data", Path: "/var/lib/app"}}
		})},
		{with(`"ports": [{"port": 80}, {"port": 53, "protocol": "udp"}]`), minimal(func(m *Manifest) {
			m.Ports = []Port{{Port: 80}, {Port: 53, Protocol: "udp"}}
		})},
		{with(`"ready": {"tcp": 8080, "timeout": "30s"}`), minimal(func(m *Manifest) {
			m.Ready = &Ready{TCP: 8080, Timeout: Duration{30 * time.Second}}
		})},
		{with(`"ready": {"http": "http://127.0.0.1:8080/health"}`), minimal(func(m *Manifest) {
			m.Ready = &Ready{HTTP: "http://127.0.0.1:8080/health"}
		})},
		{with(`"ready": {"fd": 3}`), minimal(func(m *Manifest) { m.Ready = &Ready{FD: 3} })},
		{with(`"allow": {"devices": true, "setuid": true}`), minimal(func(m *Manifest) { m.Allow = Allow{Devices: true, Setuid: true} })},
		{with(`"Workdir": "/"`), minimal(func(m *Manifest) { m.Workdir = "/" })}, // encoding/json folds case
	} {
		got, err := Parse(strings.NewReader(tc.json))
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%s) = %+v, %v; want %+v", tc.json, got, err, tc.want)
		}
	}
}

func TestParseManifestBad(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{``, `empty`},
		{`[]`, `want a JSON object, not a JSON array`},
		{`nope`, `not valid JSON at byte 2: invalid character 'o' in literal null (expecting 'u')`},
		{`{"version": 1`, `not valid JSON: it ends too early`},
		{with("") + ` {}`, `trailing data after the JSON object`},
		{`{}`, `version: missing; this node understands version 1`},
		{`{"version": 2}`, `version 2: this node understands version 1`},
		{`{"version": "1"}`, `version: want an integer, not a JSON string`},
		{`{"version": 1, "command": ["/x"]}`, `name "": use 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit`},
		{`{"version": 1, "name": "App", "command": ["/x"]}`, `name "App": use 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit`},
		{`{"version": 1, "name": "app"}`, `command: empty; give the program and its arguments, e.g. ["/bin/httpd", "-f"]`},
		{`{"version": 1, "name": "app", "command": [""]}`, `command: empty; give the program and its arguments, e.g. ["/bin/httpd", "-f"]`},
		{`{"version": 1, "name": "app", "command": "/x"}`, `command: want a list of strings, not a JSON string`},
		{`{"version": 1, "name": "app", "command": ["/x", "a\u0000"]}`, `command[1]: contains a NUL byte`},
		{with(`"env": {"1A": "x"}`), `env "1A": not a variable name`},
		{with(`"env": {"A": 1}`), `env: want a string, not a JSON number`},
		{with(`"env": {"A": "\u0000"}`), `env A: value contains a NUL byte`},
		{with(`"workdir": "srv"`), `workdir "srv": not an absolute path`},
		{with(`"user": "Bad User"`), `user "Bad User": want a user name, a UID, or UID:GID`},
		{with(`"user": "0:4294967295"`), `user "0:4294967295": IDs go up to 4294967294`},
		{with(`"user": "99999999999"`), `user "99999999999": IDs go up to 4294967294`},
		{with(`"restart": {"policy": "sometimes"}`), `restart.policy "sometimes": want always, on-failure or never`},
		{with(`"restart": {"restart_codes": [256]}`), `restart: exit code 256: want 0-255`},
		{with(`"restart": {"no_restart_codes": [-1]}`), `restart: exit code -1: want 0-255`},
		{with(`"restart": {"delay": "5x"}`), `restart.delay "5x": not a duration (e.g. "5s")`},
		{with(`"restart": {"delay": 5}`), `restart.delay 5: want a duration string (e.g. "5s")`},
		{with(`"restart": {"max_delay": "-1s"}`), `restart.max_delay "-1s": not a duration (e.g. "5s")`},
		{with(`"restart": {"reset_after": {}}`), `restart.reset_after {}: want a duration string (e.g. "5s")`},
		{with(`"restart": {"delay": "2m", "max_delay": "1m"}`), `restart.delay 2m0s is longer than restart.max_delay 1m0s`},
		{with(`"stop": {"signal": "SIGFOO"}`), `stop.signal "SIGFOO": not a signal name (e.g. "SIGTERM")`},
		{with(`"stop": {"timeout": "soon"}`), `stop.timeout "soon": not a duration (e.g. "5s")`},
		{with(`"isolation": {"minimum": "vm"}`), `isolation.minimum "vm": want one of chroot, namespaces, userns, cgroups`},
		{with(`"isolation": {"namespaces": ["user"]}`), `isolation.namespaces: "user": want mount, pid, uts, ipc or net`},
		{with(`"isolation": {"network": "bridge"}`), `isolation.network "bridge": want host or private`},
		{with(`"resources": {"memory": "5Q"}`), `resources.memory "5Q": not a size (e.g. "256M")`},
		{with(`"resources": {"memory": "1i"}`), `resources.memory "1i": not a size (e.g. "256M")`},
		{with(`"resources": {"memory": true}`), `resources.memory true: want a size (e.g. "256M")`},
		{with(`"resources": {"pids": -1}`), `resources.pids -1: negative`},
		{with(`"resources": {"pids": 1.5}`), `resources.pids: want an integer, not a JSON number 1.5`},
		{with(`"resources": {"cpu_weight": 10001}`), `resources.cpu_weight 10001: want 1-10000`},
		{with(`"resources": {"rlimits": {"files": 1}}`), `resources.rlimits "files": want one of as, core, cpu, data, fsize, memlock, nofile, nproc, stack`},
		{with(`"resources": {"rlimits": {"nofile": -1}}`), `resources.rlimits: want a non-negative integer, not a JSON number -1`},
		{with(`"volumes": [{"name": "Data", "path": "/d"}]`), `volumes[0].name "Data": use 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit`},
		{with(`"volumes": [{"name": "d", "path": "d"}]`), `volumes[0].path "d": want a clean absolute path other than /`},
		{with(`"volumes": [{"name": "d", "path": "/"}]`), `volumes[0].path "/": want a clean absolute path other than /`},
		{with(`"volumes": [{"name": "d", "path": "/a/../b"}]`), `volumes[0].path "/a/../b": want a clean absolute path other than /`},
		{with(`"volumes": [{"name": "d", "path": "/a"}, {"name": "d", "path": "/b"}]`), `volumes[1].name "d": used twice`},
		{with(`"ports": [{"port": 0}]`), `ports[0].port 0: want 1-65535`},
		{with(`"ports": [{"port": 80, "protocol": "sctp"}]`), `ports[0].protocol "sctp": want tcp or udp`},
		{with(`"ready": {}`), `ready: give exactly one of tcp, http or fd`},
		{with(`"ready": {"tcp": 80, "fd": 3}`), `ready: give exactly one of tcp, http or fd`},
		{with(`"ready": {"tcp": 70000}`), `ready.tcp 70000: want 1-65535`},
		{with(`"ready": {"fd": 2}`), `ready.fd 2: want 3 or more (0-2 are stdio)`},
		{with(`"ready": {"http": "https://x/"}`), `ready.http "https://x/": want an http:// URL`},
		{with(`"ready": {"fd": 3, "timeout": "x"}`), `ready.timeout "x": not a duration (e.g. "5s")`},
		{with(`"allow": {"devices": "yes"}`), `allow.devices: want true or false, not a JSON string`},
		{with(`"bogus": 1`), `unknown field "bogus"`},
		{with(`"restart": {"dealy": "1s"}`), `unknown field "restart.dealy"`},
		{with(`"volumes": [{"name": "a", "path": "/a", "ro": true}]`), `unknown field "volumes[0].ro"`},
		{with(`"ready": {"tcp": 80, "Bogus": 1}`), `unknown field "ready.Bogus"`},
		{`{"version": 1, "name": "app", "command": ["/x"], "env": {"A": "` + strings.Repeat("x", MaxSize) + `"}}`,
			`larger than 1048576 bytes`},
	} {
		_, err := Parse(strings.NewReader(tc.json))
		if want := "manifest.json: " + tc.want; err == nil || err.Error() != want {
			t.Errorf("Parse(%.100s) = %v, want %s", tc.json, err, want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"512", 512, true}, {"64K", 64 << 10, true}, {"256M", 256 << 20, true}, {"1G", 1 << 30, true},
		{"2T", 2 << 40, true}, {"1KB", 1 << 10, true}, {"1kib", 1 << 10, true}, {" 3m ", 3 << 20, true},
		{"", 0, false}, {"M", 0, false}, {"1i", 0, false}, {"1iB", 0, false}, {"-1", 0, false},
		{"1.5G", 0, false}, {"9000000T", 0, false}, {"1P", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzParseManifest: no panic, and an accepted manifest survives a round
// trip through JSON unchanged (what the unpack helper relies on: it
// sends the parsed manifest back to PID 1 as JSON).
func FuzzParseManifest(f *testing.F) {
	for _, s := range []string{
		with(""), with(`"env": {"A": "b"}, "user": "1:2", "workdir": "/w"`),
		with(`"restart": {"policy": "never", "delay": "1s", "max_delay": "1m", "no_restart_codes": [1]}`),
		with(`"stop": {"signal": "INT", "timeout": "1m30s"}, "isolation": {"namespaces": []}`),
		with(`"resources": {"memory": "1G", "rlimits": {"nofile": 10}}, "volumes": [{"name": "v", "path": "/v"}]`),
		with(`"ports": [{"port": 1}], "ready": {"http": "http://x"}, "allow": {"setuid": true}`),
		with(`"restart": {"delay": "5x"}`), `{"version": 1}`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(strings.NewReader(string(b)))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "manifest.json: ") {
				t.Errorf("Parse error %q does not name manifest.json", err)
			}
			return
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("json.Marshal(%+v) = %v", m, err)
		}
		again, err := Parse(strings.NewReader(string(out)))
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("Parse(json.Marshal(m)) = %+v, %v; want %+v (json %s)", again, err, m, out)
		}
	})
}
