package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"allium/manifest"

	"github.com/spf13/pflag"
)

// manifestFlags are the flags of `mkimage pack` that fill in
// manifest.json. Only flags given on the command line change a manifest
// read with --manifest.
type manifestFlags struct {
	base         string // --manifest: a manifest.json to start from
	name         string
	cmd          string
	env          []string
	user         string
	workdir      string
	restart      choiceFlag
	stopSignal   string
	stopTimeout  time.Duration
	volumes      []string
	ports        []string
	readyTCP     int
	readyHTTP    string
	allowSetuid  bool
	allowDevices bool
}

func (f *manifestFlags) register(fl *pflag.FlagSet) {
	f.restart = choiceFlag{choices: []string{manifest.RestartAlways, manifest.RestartOnFailure, manifest.RestartNever}}
	fl.StringVar(&f.cmd, "cmd", "", `the command: "/bin/httpd -f -p 8080" (split at spaces, '' and "" quote) or a JSON array`)
	fl.StringVar(&f.name, "name", "", "the container's name (default: the output's name without extensions)")
	fl.StringArrayVar(&f.env, "env", nil, "KEY=VALUE in the workload's environment (repeatable)")
	fl.StringVar(&f.user, "user", "", "run as NAME, UID or UID:GID (default root)")
	fl.StringVar(&f.workdir, "workdir", "", "the working directory (default /)")
	fl.Var(&f.restart, "restart", "the restart policy (default always)")
	fl.StringVar(&f.stopSignal, "stop-signal", "", "the signal that asks it to stop (default SIGTERM)")
	fl.DurationVar(&f.stopTimeout, "stop-timeout", 0, "how long to wait after it before SIGKILL (default 10s)")
	fl.StringArrayVar(&f.volumes, "volume", nil, "NAME:/path, a directory that survives redeploys (repeatable)")
	fl.StringArrayVar(&f.ports, "port", nil, "PORT or PORT/udp it listens on (repeatable)")
	fl.IntVar(&f.readyTCP, "ready-tcp", 0, "ready once this loopback TCP port accepts connections")
	fl.StringVar(&f.readyHTTP, "ready-http", "", "ready once this http:// URL on loopback answers 2xx")
	fl.BoolVar(&f.allowSetuid, "allow-setuid", false, "keep setuid/setgid bits (the node must allow them)")
	fl.BoolVar(&f.allowDevices, "allow-devices", false, "keep device nodes (the node must allow them)")
	fl.StringVar(&f.base, "manifest", "", "a manifest.json to start from; the flags above override it")
}

// manifestEdit is what one flag does to a manifest.
type manifestEdit struct {
	flag  string
	apply func(*manifest.Manifest) error
}

func (f *manifestFlags) edits() []manifestEdit {
	return []manifestEdit{
		{"name", func(m *manifest.Manifest) error { m.Name = f.name; return nil }},
		{"cmd", func(m *manifest.Manifest) (err error) { m.Command, err = splitCommand(f.cmd); return err }},
		{"env", f.applyEnv},
		{"user", func(m *manifest.Manifest) error { m.User = f.user; return nil }},
		{"workdir", func(m *manifest.Manifest) error { m.Workdir = f.workdir; return nil }},
		{"restart", func(m *manifest.Manifest) error { m.Restart.Policy = f.restart.value; return nil }},
		{"stop-signal", func(m *manifest.Manifest) error { m.Stop.Signal = f.stopSignal; return nil }},
		{"stop-timeout", f.applyStopTimeout},
		{"volume", f.applyVolumes},
		{"port", f.applyPorts},
		{"ready-tcp", func(m *manifest.Manifest) error { m.Ready = &manifest.Ready{TCP: f.readyTCP}; return nil }},
		{"ready-http", func(m *manifest.Manifest) error { m.Ready = &manifest.Ready{HTTP: f.readyHTTP}; return nil }},
		{"allow-setuid", func(m *manifest.Manifest) error { m.Allow.Setuid = f.allowSetuid; return nil }},
		{"allow-devices", func(m *manifest.Manifest) error { m.Allow.Devices = f.allowDevices; return nil }},
	}
}

// applyFlags applies every flag given on the command line to m. Each is
// first checked alone, on an otherwise valid manifest, so a bad value is
// a usage error naming its flag and saying, in the manifest's words,
// what is wrong.
func (f *manifestFlags) applyFlags(fl *pflag.FlagSet, m *manifest.Manifest) error {
	for _, e := range f.edits() {
		if !fl.Changed(e.flag) {
			continue
		}
		probe := manifest.Manifest{Version: manifest.Version, Name: "probe", Command: []string{"/probe"}}
		err := e.apply(&probe)
		if err == nil {
			err = probe.Validate()
		}
		if err != nil {
			return usagef("--%s: %w", e.flag, err)
		}
		if err := e.apply(m); err != nil {
			return err
		}
	}
	return nil
}

func (f *manifestFlags) applyEnv(m *manifest.Manifest) error {
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%q: want KEY=VALUE", kv)
		}
		if m.Env == nil {
			m.Env = map[string]string{}
		}
		m.Env[k] = v
	}
	return nil
}

func (f *manifestFlags) applyStopTimeout(m *manifest.Manifest) error {
	if f.stopTimeout <= 0 {
		return fmt.Errorf("%v: want a positive duration such as 10s", f.stopTimeout)
	}
	m.Stop.Timeout = manifest.Duration{D: f.stopTimeout}
	return nil
}

func (f *manifestFlags) applyVolumes(m *manifest.Manifest) error {
	for _, v := range f.volumes {
		name, p, ok := strings.Cut(v, ":")
		if !ok {
			return fmt.Errorf("%q: want NAME:/path, e.g. data:/var/lib/app", v)
		}
		m.Volumes = append(m.Volumes, manifest.Volume{Name: name, Path: p})
	}
	return nil
}

func (f *manifestFlags) applyPorts(m *manifest.Manifest) error {
	for _, s := range f.ports {
		num, proto, _ := strings.Cut(s, "/")
		n, err := strconv.Atoi(num)
		if err != nil {
			return fmt.Errorf("%q: want PORT or PORT/udp, e.g. 8080 or 53/udp", s)
		}
		m.Ports = append(m.Ports, manifest.Port{Port: n, Protocol: proto})
	}
	return nil
}

// readBase reads the --manifest file without validating it: the flags
// may supply what it lacks. Unknown fields are still an error.
func readBase(file string) (*manifest.Manifest, error) {
	m := &manifest.Manifest{}
	if file == "" {
		return m, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--manifest: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(m); err != nil {
		return nil, fmt.Errorf("--manifest %s: %w: fix the file (see manifest.Manifest for the fields)", file, err)
	}
	return m, nil
}

// manifestDefaults fill in what neither --manifest nor a flag gave.
type manifestDefaults struct {
	name    string   // from the output's name
	command []string // a --binary pack's program
}

// buildManifest makes manifest.json from --manifest, the flags and the
// defaults, and returns it marshalled, as ParseManifest accepts it.
func (f *manifestFlags) buildManifest(fl *pflag.FlagSet, def manifestDefaults) ([]byte, *manifest.Manifest, error) {
	m, err := readBase(f.base)
	if err != nil {
		return nil, nil, err
	}
	if m.Version == 0 {
		m.Version = manifest.Version
	}
	if err := f.applyFlags(fl, m); err != nil {
		return nil, nil, err
	}
	if err := fillDefaults(m, def); err != nil {
		return nil, nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	b = append(b, '\n')
	if _, err := manifest.Parse(bytes.NewReader(b)); err != nil {
		if f.base != "" {
			return nil, nil, fmt.Errorf("--manifest %s with the flags: %w", f.base, err)
		}
		return nil, nil, usagef("%w", err)
	}
	return b, m, nil
}

func fillDefaults(m *manifest.Manifest, def manifestDefaults) error {
	if len(m.Command) == 0 {
		m.Command = def.command
	}
	if len(m.Command) == 0 {
		return usagef(`--cmd is required: the program to run and its arguments, e.g. --cmd "/bin/httpd -f -p 8080"`)
	}
	if m.Name != "" {
		return nil
	}
	if err := manifest.ValidName(def.name); err != nil {
		return usagef("--name is required: the output's name gives no container name: %w", err)
	}
	m.Name = def.name
	return nil
}

// splitCommand reads --cmd: a JSON array of strings, or words split at
// white space where '…' quotes literally, "…" quotes with \" and \\
// escapes, and a backslash outside quotes escapes the next character.
func splitCommand(s string) ([]string, error) {
	if t := strings.TrimSpace(s); strings.HasPrefix(t, "[") {
		var argv []string
		if err := json.Unmarshal([]byte(t), &argv); err != nil {
			return nil, fmt.Errorf("%s: not a JSON array of strings: %w", t, err)
		}
		return argv, nil
	}
	return shellSplit(s)
}

var errUnterminated = errors.New("unterminated quote or trailing backslash")

// shellSplit works on bytes: the special characters are ASCII, and any
// other byte, valid UTF-8 or not, is kept as it is.
func shellSplit(s string) ([]string, error) {
	var (
		argv  []string
		word  []byte
		inArg bool // a word is open, maybe empty ('')
		quote byte // ' or " while inside quotes
		esc   bool // the previous byte was an active backslash
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			if quote == '"' && c != '"' && c != '\\' {
				word = append(word, '\\')
			}
			word, esc = append(word, c), false
		case c == '\\' && quote != '\'':
			esc, inArg = true, true
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			word = append(word, c)
		case c == '\'' || c == '"':
			quote, inArg = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if inArg {
				argv, word, inArg = append(argv, string(word)), word[:0], false
			}
		default:
			word, inArg = append(word, c), true
		}
	}
	if quote != 0 || esc {
		return nil, fmt.Errorf("%q: %w", s, errUnterminated)
	}
	if inArg {
		argv = append(argv, string(word))
	}
	return argv, nil
}
