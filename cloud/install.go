package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"allium/api"
)

// remoteBundle is where cloud install copies install.sh on the machine:
// /var/tmp survives the copy's interruption and is on a disk, not tmpfs.
const remoteBundle = "/var/tmp/allium-install.sh"

// defaultNodePort is the node's API port when the alias names none.
const defaultNodePort = "7707"

type installOpts struct {
	ssh       string   // --ssh [USER@]HOST[:PORT], or an ssh config Host
	sshOpts   []string // --ssh-option, passed to ssh as -o
	sshConfig string   // --ssh-config, passed to ssh as -F
	bundle    string   // --bundle, else the alias's
	permanent bool
	dryRun    bool
	wait      time.Duration // for the node to answer after the switch
}

func newInstall(g *globals) *cobra.Command {
	var o installOpts
	cmd := &cobra.Command{
		Use:   "install NAME --ssh [USER@]HOST[:PORT]",
		Short: "Install a node on a running Linux VPS over ssh",
		Long: `Install the node NAME (an alias mkimage saved, with its install.sh) on the
machine ssh reaches, which keeps running its own system until the switch:

  1. copy install.sh to ` + remoteBundle + ` (one ssh connection, shared
     by the steps; your ssh config, agent, known_hosts and ProxyJump apply);
  2. run it with --yes: its preflight changes nothing when it refuses, then it
     writes the node's files and switches: on KVM or Xen HVM it kexecs the
     node's kernel as a trial (a reset of the VPS brings the old system back;
     --permanent also makes it GRUB's default), in an OpenVZ or LXC
     container it makes Allium the container's init and restarts it;
  3. wait for the node to answer on its API, and print cloud info.

The alias's address becomes the ssh host's (with the node's API port) when
it was a loopback address. --dry-run runs the preflight and prints the
plan only. cloud uninstall NAME undoes the install from the running node.`,
		Example: `  cloud install web1 --ssh root@203.0.113.7
  cloud install web1 --ssh root@203.0.113.7:2222 --permanent
  cloud install web1 --ssh myvps --dry-run           # a Host in ~/.ssh/config`,
		Args:              hostArg,
		ValidArgsFunction: g.completeHost,
		RunE: g.runLongE(func(ctx context.Context, args []string) error {
			return g.install(ctx, args[0], o)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.ssh, "ssh", "", "where to install: `[USER@]HOST[:PORT]`; HOST may be a Host of your ssh config (required)")
	f.StringVar(&o.sshConfig, "ssh-config", "", "an ssh config `FILE` to use instead of ~/.ssh/config (ssh -F)")
	f.StringArrayVar(&o.sshOpts, "ssh-option", nil, "an ssh `OPTION=VALUE` (ssh -o), for example ProxyJump=bastion; repeatable")
	f.StringVar(&o.bundle, "bundle", "", "the install.sh to copy (default: the one mkimage wrote for the alias)")
	f.BoolVar(&o.permanent, "permanent", false, "on KVM/Xen HVM: also make the node GRUB's default entry, so it comes up on every boot")
	f.BoolVar(&o.dryRun, "dry-run", false, "copy install.sh and run its preflight and plan only; change nothing")
	f.DurationVar(&o.wait, "wait", 5*time.Minute, "how long to wait for the node to answer after the switch")
	cmd.MarkFlagRequired("ssh")
	return cmd
}

// installRun is what one cloud install saw, for its summary.
type installRun struct {
	started, copied, ran time.Time
	firstStep, lastStep  string
	firstStepAt          time.Time
	switched             bool // install.sh said it switches
}

func (g *globals) install(ctx context.Context, name string, o installOpts) error {
	cfg, err := g.configDir()
	if err != nil {
		return err
	}
	alias, err := cfg.Alias(name)
	if err != nil {
		return fmt.Errorf("%w (cloud install takes an alias: build the node with mkimage appliance --name %s)", err, name)
	}
	bundle := o.bundle
	if bundle == "" {
		bundle = alias.Bundle
	}
	if bundle == "" {
		return usagef("the alias %s names no install.sh (built by an older mkimage): pass --bundle DIR/install.sh", name)
	}
	total, err := checkBundle(bundle)
	if err != nil {
		return err
	}
	t, err := parseSSHTarget(o.ssh)
	if err != nil {
		return usagef("--ssh %q: %v", o.ssh, err)
	}
	if !o.dryRun {
		if err := g.refuseRunning(ctx, name, alias); err != nil {
			return err
		}
	}
	sess, err := newSSHSession(t, o.sshConfig, o.sshOpts)
	if err != nil {
		return err
	}
	defer sess.close()

	run := installRun{started: time.Now()}
	fmt.Fprintf(g.stdout, "%s: copying %s (%s) to %s:%s\n", name, bundle, size(total), t, remoteBundle)
	if err := g.copyBundle(ctx, sess, bundle, total); err != nil {
		return g.sshFailed(ctx, name, alias, t, "copying install.sh", err)
	}
	run.copied = time.Now()
	args := []string{"--yes"}
	if o.permanent {
		args = append(args, "--permanent")
	}
	if o.dryRun {
		args = []string{"--dry-run"}
	}
	fmt.Fprintf(g.stdout, "%s: running install.sh %s on %s\n", name, strings.Join(args, " "), t)
	err = sess.run(ctx, "sh "+remoteBundle+" "+strings.Join(args, " "), g.stderr, func(line string) {
		fmt.Fprintln(g.stdout, "  "+line)
		if step, ok := strings.CutPrefix(line, "step  "); ok {
			word, _, _ := strings.Cut(strings.TrimSpace(step), " ")
			if run.firstStep == "" {
				run.firstStep, run.firstStepAt = word, time.Now()
			}
			run.lastStep = word
			run.switched = run.switched || word == "switch"
		}
	})
	run.ran = time.Now()
	var exit *sshExit
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.code != 255:
		if run.firstStep == "" {
			return fmt.Errorf("install.sh on %s refused (exit %d): see its findings above; nothing was changed", t, exit.code)
		}
		return fmt.Errorf("install.sh on %s stopped at step %s (exit %d): see above; the old system still boots as it did", t, run.lastStep, exit.code)
	case run.switched:
		// The connection went down with the old system: expected.
	case run.firstStep == "":
		return g.sshFailed(ctx, name, alias, t, "running install.sh's preflight", err)
	default:
		fmt.Fprintf(g.stderr, "%s: the ssh connection was lost during step %s (%v); install.sh goes on by itself: waiting for the node\n",
			name, run.lastStep, err)
	}
	if o.dryRun {
		return nil
	}
	if !run.switched && err == nil {
		return fmt.Errorf("install.sh on %s ended without switching to the node (last step %q): see above", t, run.lastStep)
	}
	if alias, err = g.pointAlias(cfg, alias, sess); err != nil {
		return err
	}
	n, err := g.waitNode(ctx, name, o.wait)
	if err != nil {
		return fmt.Errorf("%w; the old system comes back with a reset or a power cycle of the VPS (a trial install), or see README: Troubleshooting", err)
	}
	answered := time.Now()
	preflight, install := run.firstStepAt.Sub(run.copied), run.ran.Sub(run.firstStepAt)
	if run.firstStepAt.IsZero() {
		preflight, install = run.ran.Sub(run.copied), 0
	}
	fmt.Fprintf(g.stdout, "%s: installed in %s (copy %s, preflight %s, install %s, switch and boot %s); it answers at %s\n",
		name, secs(answered.Sub(run.started)), secs(run.copied.Sub(run.started)), secs(preflight), secs(install),
		secs(answered.Sub(run.ran)), orDash(alias.Address))
	return writeRows(g.stdout, nodeRows(n))
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s" }

// checkBundle says whether path is an install bundle, and its size.
func checkBundle(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("install bundle: %w (mkimage appliance writes DIR/install.sh)", err)
	}
	defer f.Close()
	head := make([]byte, 64)
	n, _ := io.ReadFull(f, head)
	if !strings.HasPrefix(string(head[:n]), "#!/bin/sh\n# Allium install bundle") {
		return 0, fmt.Errorf("%s is not an Allium install bundle (mkimage appliance writes DIR/install.sh)", path)
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// refuseRunning refuses a second install: the node already answers at
// the alias's address (with its own key), installed somewhere or under
// QEMU, and two copies of one node would share its keys and its onion.
func (g *globals) refuseRunning(ctx context.Context, name string, alias api.Alias) error {
	if alias.Address == "" {
		return nil
	}
	if n, ok := g.probeNode(ctx, name); ok {
		return fmt.Errorf("%s already answers at %s as an Allium node (%s, boot %d): nothing to install; "+
			"cloud uninstall %s (or cloud poweroff %s, for a QEMU) first: two copies of a node would share its keys and its onion",
			name, alias.Address, n.Environment, n.BootCount, name, name)
	}
	return nil
}

// probeNode asks the alias's node for its info, briefly.
func (g *globals) probeNode(ctx context.Context, name string) (api.Node, bool) {
	s, err := g.connect(name, "")
	if err != nil {
		return api.Node{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := s.client.Node(ctx)
	return n, err == nil
}

// sshFailed explains an ssh failure before the install changed
// anything: a node that already runs Allium there has no sshd.
func (g *globals) sshFailed(ctx context.Context, name string, alias api.Alias, t sshTarget, what string, err error) error {
	if alias.Address != "" && hostOf(alias.Address) == t.host {
		if n, ok := g.probeNode(ctx, name); ok {
			return fmt.Errorf("%s: ssh to %s failed (%v), and %s answers there as an Allium node (boot %d): it is installed already",
				what, t, err, name, n.BootCount)
		}
	}
	return fmt.Errorf("%s: ssh to %s failed: %w; nothing was changed", what, t, err)
}

// copyBundle streams the bundle to remoteBundle through a temporary
// name, so that a cut connection leaves no half bundle under the name.
func (g *globals) copyBundle(ctx context.Context, s *sshSession, path string, total int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b := g.newBar(total, "copy", 1<<20)
	defer b.finish()
	r := &countReader{r: f, count: b.set}
	remote := fmt.Sprintf("umask 077 && cat > %[1]s.part && mv -f %[1]s.part %[1]s", remoteBundle)
	return s.runInput(ctx, remote, r, g.stderr)
}

// pointAlias makes the alias lead to the machine just installed when it
// led to a loopback address (mkimage's default, for QEMU) or nowhere.
func (g *globals) pointAlias(cfg api.Config, a api.Alias, s *sshSession) (api.Alias, error) {
	if a.Address != "" && !isLoopback(a.Address) {
		return a, nil
	}
	port := defaultNodePort
	if a.Address != "" {
		if _, p, err := net.SplitHostPort(a.Address); err == nil {
			port = p
		}
	} else if a.Onion != "" {
		return a, nil // a node without TCP: reached through its onion
	}
	a.Address = net.JoinHostPort(s.hostname(), port)
	if err := cfg.SaveAlias(a); err != nil {
		return a, fmt.Errorf("alias %s: %w", a.Name, err)
	}
	fmt.Fprintf(g.stdout, "%s: the alias now leads to %s\n", a.Name, a.Address)
	return a, nil
}

func isLoopback(addr string) bool {
	h := hostOf(addr)
	if h == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// waitNode asks the node for its info until it answers or limit passes,
// saying every 15 s that it still waits.
func (g *globals) waitNode(ctx context.Context, name string, limit time.Duration) (api.Node, error) {
	start := time.Now()
	fmt.Fprintf(g.stdout, "%s: waiting for the node to answer (up to %v)\n", name, limit)
	said := start
	var last error
	for time.Since(start) < limit {
		s, err := g.connect(name, "")
		if err != nil {
			return api.Node{}, err
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := s.client.Node(pctx)
		cancel()
		if err == nil {
			return n, nil
		}
		last = err
		if time.Since(said) >= 15*time.Second {
			fmt.Fprintf(g.stdout, "%s: no answer yet after %s\n", name, secs(time.Since(start)))
			said = time.Now()
		}
		if err := sleep(ctx, time.Second); err != nil {
			return api.Node{}, err
		}
	}
	return api.Node{}, fmt.Errorf("%s did not answer within %v (last: %v)", name, limit, last)
}

// uninstall ------------------------------------------------------------

func newUninstall(g *globals) *cobra.Command {
	var nodeKey string
	cmd := &cobra.Command{
		Use:   "uninstall HOST",
		Short: "Undo a node's install and reboot into the system it replaced",
		Long: `Ask a node that install.sh (or cloud install) put on a machine to undo it and
reboot into the system it was installed over: after a trial kexec install it
just reboots (the bootloader was never changed); after --permanent it makes
that system GRUB's default again first; in an OpenVZ or LXC container it
puts the original /sbin/init back. The node's data stays in
/var/lib/allium of that system, so a second install finds it again.
A node that was not installed over another system refuses.`,
		Example: `  cloud uninstall web1
  ssh root@203.0.113.7       # the old system, a minute later`,
		Args:              hostArg,
		ValidArgsFunction: g.completeHost,
		RunE: g.runE(func(ctx context.Context, args []string) error {
			s, err := g.connect(args[0], nodeKey)
			if err != nil {
				return err
			}
			ctx, cancel := s.bounded(ctx)
			defer cancel()
			a, err := s.client.Uninstall(ctx)
			if err != nil {
				return s.explain(err)
			}
			_, err = fmt.Fprintf(g.stdout, "%s: %s\n", s.name, a.Status)
			return err
		}),
	}
	nodeKeyFlag(cmd, &nodeKey)
	return cmd
}

// ssh ------------------------------------------------------------------

// sshTarget is --ssh: [USER@]HOST[:PORT], HOST possibly [IPv6] or a
// Host of the user's ssh config.
type sshTarget struct{ user, host, port string }

func (t sshTarget) String() string {
	s := t.host
	if t.user != "" {
		s = t.user + "@" + s
	}
	if t.port != "" {
		s += ":" + t.port
	}
	return s
}

func parseSSHTarget(s string) (sshTarget, error) {
	var t sshTarget
	if s == "" {
		return t, errors.New("empty")
	}
	if u, rest, ok := strings.Cut(s, "@"); ok {
		if u == "" {
			return t, errors.New("empty user before @")
		}
		t.user, s = u, rest
	}
	if h, p, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return t, fmt.Errorf("port %q: want 1-65535", p)
		}
		t.host, t.port = h, p
	} else if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
		t.host = s // a bare IPv6 address
	} else if strings.Contains(s, ":") {
		return t, err
	} else {
		t.host = s
	}
	if t.host == "" || strings.HasPrefix(t.host, "-") || strings.ContainsAny(t.host, " \t/") {
		return t, fmt.Errorf("host %q: want a host name, an address or a Host of your ssh config", t.host)
	}
	return t, nil
}

// sshExit is ssh's exit status: the remote command's, or 255 when ssh
// itself failed (no connection, lost connection, authentication).
type sshExit struct {
	code   int
	stderr string
}

func (e *sshExit) Error() string {
	if e.stderr != "" {
		return strings.TrimSpace(lastLine(e.stderr))
	}
	return "exit status " + strconv.Itoa(e.code)
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// scanLines calls line for each line of r.
func scanLines(r io.Reader, line func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line(sc.Text())
	}
}
