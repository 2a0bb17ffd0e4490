package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"regexp"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"allium/api"
	"allium/hiddenservice"
)

const keysLong = `Manage the clients a node authorizes. A client is one entry holding both
of its keys: the TLS key (ed25519) it signs in with on every listener, and
the x25519 key tor's client authorization needs to find the node's onion.
Removing a client locks it out of both at once.

  cloud keys HOST list               the authorized clients; "*" marks yours
  cloud keys HOST add NAME KEYLINE   authorize a client from the line that
                                     "cloud keys me" printed on its machine
  cloud keys HOST add NAME --key ed25519:... [--onion-key x25519:...]
  cloud keys HOST rm NAME|FINGERPRINT
  cloud keys me                      print this client's key line, to hand
                                     to an admin of a node

Roles: admin may do everything; viewer may only read (info, ps, logs,
images, events, keys list). add takes --role (default admin). The node
refuses to remove its last admin key. Adding a client that is already
there with the same keys, name and role changes nothing.`

// keysOpts are the flags of cloud keys.
type keysOpts struct {
	nodeKey  string
	key      string
	onionKey string
	role     string
	name     string // for "me"
}

func newKeys(g *globals) *cobra.Command {
	var o keysOpts
	cmd := &cobra.Command{
		Use:   "keys HOST list|add|rm [ARGS] | keys me",
		Short: "Manage the clients a node authorizes",
		Long:  keysLong,
		Example: `  cloud keys me
  cloud keys web1 add alice 'ed25519:BASE64 x25519:BASE32 alice@laptop'
  cloud keys web1 add ci --key ed25519:BASE64 --role viewer
  cloud keys web1 list
  cloud keys web1 rm alice
  cloud keys web1 rm SHA256:2V0sYH8fHb6w0dN5xq3oUCmXkEo4Yw3u0mB8FJrj1nQ`,
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: g.completeKeys,
		RunE: g.runE(func(ctx context.Context, args []string) error {
			return g.keys(ctx, args, o)
		}),
	}
	nodeKeyFlag(cmd, &o.nodeKey)
	f := cmd.Flags()
	f.StringVar(&o.key, "key", "", "add: the client's TLS key, `ed25519:BASE64`")
	f.StringVar(&o.onionKey, "onion-key", "", "add: the client's onion key, `x25519:BASE32` (without it, the client can use TCP only)")
	f.StringVar(&o.role, "role", "", "add: the client's `ROLE`, admin or viewer (default admin)")
	f.StringVar(&o.name, "name", "", "me: the `NAME` to print in the key line (default USER@HOSTNAME)")
	return cmd
}

// keys dispatches "me" and HOST VERB.
func (g *globals) keys(ctx context.Context, args []string, o keysOpts) error {
	if len(args) == 1 && args[0] == "me" {
		return g.keysMe(o)
	}
	if len(args) < 2 {
		return usagef("keys takes HOST and list, add or rm (or just: cloud keys me), got %d argument%s", len(args), plural(len(args)))
	}
	host, verb, rest := args[0], args[1], args[2:]
	if err := o.onlyFor(verb); err != nil {
		return err
	}
	switch verb {
	case "list", "ls":
		if len(rest) != 0 {
			return usagef("keys HOST list takes no more arguments, got %q", rest)
		}
		return g.keysList(ctx, host, o)
	case "add":
		req, err := o.request(rest)
		if err != nil {
			return err
		}
		return g.keysAdd(ctx, host, o, req)
	case "rm", "remove":
		if len(rest) != 1 {
			return usagef("keys HOST rm takes one NAME or FINGERPRINT, got %d argument%s", len(rest), plural(len(rest)))
		}
		return g.keysRm(ctx, host, o, rest[0])
	}
	return usagef("keys %s %s: unknown; use list, add or rm", host, verb)
}

// onlyFor refuses a flag given to a verb that does not take it.
func (o keysOpts) onlyFor(verb string) error {
	if o.name != "" {
		return usagef("--name goes with keys me, not with keys HOST %s", verb)
	}
	if verb == "add" {
		return nil
	}
	for flag, v := range map[string]string{"--key": o.key, "--onion-key": o.onionKey, "--role": o.role} {
		if v != "" {
			return usagef("%s goes with keys HOST add, not with keys HOST %s", flag, verb)
		}
	}
	return nil
}

// request builds the body of an add from NAME and either a key line
// (in one argument or several) or --key and --onion-key.
func (o keysOpts) request(rest []string) (api.KeyRequest, error) {
	if len(rest) == 0 {
		return api.KeyRequest{}, usagef("keys HOST add takes NAME, then the client's key line or --key ed25519:BASE64")
	}
	req := api.KeyRequest{Name: rest[0], Key: o.key, OnionKey: o.onionKey, Role: o.role}
	if err := api.ValidKeyName(req.Name); err != nil {
		return req, usagef("keys HOST add: %w", err)
	}
	if err := api.ValidRole(o.role); err != nil {
		return req, usagef("--role: %w", err)
	}
	line := strings.Join(rest[1:], " ")
	switch {
	case line != "" && o.key != "":
		return req, usagef("keys HOST add: give the key line or --key, not both")
	case line == "" && o.key == "":
		return req, usagef("keys HOST add %s: which key? Give the line \"cloud keys me\" printed on the client's machine, or --key ed25519:BASE64", req.Name)
	case line == "":
		if _, err := api.ParseKey(o.key); err != nil {
			return req, usagef("--key: %w", err)
		}
		if o.onionKey != "" {
			if _, err := api.ParseOnionKey(o.onionKey); err != nil {
				return req, usagef("--onion-key: %w", err)
			}
		}
		return req, nil
	}
	if o.onionKey != "" {
		return req, usagef("keys HOST add: --onion-key goes with --key; a key line carries its own x25519 key")
	}
	keys, err := api.ParseAuthorizedKeys(strings.NewReader(line))
	if err != nil || len(keys) != 1 {
		return req, usagef("keys HOST add: %q is not a key line \"ed25519:BASE64 [x25519:BASE32] [NAME]\" (%v)", line, err)
	}
	req.Key = api.FormatKey(keys[0].Key)
	if keys[0].Onion != nil {
		req.OnionKey = api.FormatOnionKey(keys[0].Onion)
	}
	return req, nil
}

func (g *globals) keysList(ctx context.Context, host string, o keysOpts) error {
	s, err := g.connect(host, o.nodeKey)
	if err != nil {
		return err
	}
	if g.json {
		return g.printCall(ctx, s, "/v1/keys")
	}
	keys, err := s.client.Keys(ctx)
	if err != nil {
		return s.explain(err)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tFINGERPRINT\tONION\tADDED")
	for _, k := range keys {
		name := k.Name
		if k.You {
			name += " *"
		}
		onion := "-"
		if k.OnionKey != "" {
			onion = "yes"
		}
		added := "-"
		if !k.Added.IsZero() {
			added = ago(k.Added) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, k.Role, k.Fingerprint, onion, added)
	}
	return tw.Flush()
}

func (g *globals) keysAdd(ctx context.Context, host string, o keysOpts, req api.KeyRequest) error {
	s, err := g.connect(host, o.nodeKey)
	if err != nil {
		return err
	}
	k, created, err := s.client.AddKey(ctx, req)
	if err != nil {
		return s.explain(err)
	}
	if g.json {
		return g.printValue(k)
	}
	if !created {
		fmt.Fprintf(g.stdout, "%s already authorizes %s (%s, %s); nothing changed\n", s.name, k.Name, k.Role, k.Fingerprint)
		return nil
	}
	fmt.Fprintf(g.stdout, "%s now authorizes %s as %s (%s)\n", s.name, k.Name, k.Role, k.Fingerprint)
	if k.OnionKey == "" {
		fmt.Fprintf(g.stderr, "note: %s has no x25519 key, so it can reach %s over TCP only, not through its onion\n", k.Name, s.name)
	}
	return nil
}

func (g *globals) keysRm(ctx context.Context, host string, o keysOpts, id string) error {
	s, err := g.connect(host, o.nodeKey)
	if err != nil {
		return err
	}
	k, err := s.client.RemoveKey(ctx, id)
	if err != nil {
		return s.explain(err)
	}
	if g.json {
		return g.printValue(k)
	}
	fmt.Fprintf(g.stdout, "%s no longer authorizes %s (%s, %s)\n", s.name, k.Name, k.Role, k.Fingerprint)
	if k.Key == api.FormatKey(s.clientKey) {
		fmt.Fprintf(g.stderr, "note: that was this client's own key: it can no longer reach %s\n", s.name)
	}
	return nil
}

// keysMe prints this client's key line, making the keys it lacks.
func (g *globals) keysMe(o keysOpts) error {
	cfg, err := g.configDir()
	if err != nil {
		return err
	}
	name := o.name
	if name == "" {
		name = defaultKeyName()
	}
	if err := api.ValidKeyName(name); err != nil {
		return usagef("--name: %w", err)
	}
	key, madeKey, err := cfg.LoadOrCreateClientKey()
	if err != nil {
		return fmt.Errorf("client key %s: %w", cfg.KeyPath(), err)
	}
	onion, madeOnion, err := hiddenservice.LoadOrCreateClientKeyFile(cfg.OnionKeyPath())
	if err != nil {
		return fmt.Errorf("onion client key %s: %w", cfg.OnionKeyPath(), err)
	}
	for path, made := range map[string]bool{cfg.KeyPath(): madeKey, cfg.OnionKeyPath(): madeOnion} {
		if made {
			fmt.Fprintf(g.stderr, "made a new key at %s\n", path)
		}
	}
	line := api.FormatAuthorizedKeys([]api.AuthorizedKey{{
		Key: key.Public().(ed25519.PublicKey), Onion: onion.PublicKey().Bytes(), Name: name,
	}})
	fmt.Fprint(g.stdout, string(line))
	fmt.Fprintf(g.stderr, "Give this line to an admin of the node, who runs: cloud keys HOST add %s '%s'\n",
		name, strings.TrimSpace(string(line)))
	return nil
}

var notKeyName = regexp.MustCompile(`[^A-Za-z0-9._@+-]+`)

// defaultKeyName is USER@HOSTNAME, cut to what a key name may hold.
func defaultKeyName() string {
	who := "me"
	if u, err := user.Current(); err == nil && u.Username != "" {
		who = u.Username
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		who += "@" + strings.Split(h, ".")[0]
	}
	name := strings.TrimLeft(notKeyName.ReplaceAllString(who, "-"), "._@+-")
	if len(name) > 63 {
		name = name[:63]
	}
	if api.ValidKeyName(name) != nil {
		return "me"
	}
	return name
}

// completeKeys offers "me" and the alias names, then the verbs.
func (g *globals) completeKeys(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	switch len(args) {
	case 0:
		hosts, d := g.completeHost(cmd, args, prefix)
		return append([]string{"me\tprint this client's key line"}, hosts...), d
	case 1:
		if args[0] == "me" {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return []string{"list", "add", "rm"}, cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// printValue prints v as indented JSON.
func (g *globals) printValue(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return g.printJSON(b)
}
