package apps

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"allium/api"
	"allium/internal/boltpage"
)

// The issue-10 bug: a state.db replaced by a fresh one lost every
// container record, and the image collection at the next boot deleted
// an image those containers' roots still used. Containers come back
// from their roots on disk, stopped, and no image a root uses goes.

// push pushes an image named name and backdates it past gcGrace.
func push(t *testing.T, n *node, name string) string {
	t.Helper()
	data, digest := image(t, fmt.Sprintf(`{"version": 1, "name": %q, "command": ["/app"]}`, name))
	if _, err := n.svc.PutImage(context.Background(), digest, 0, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	info := filepath.Join(n.dir, "data", "images", strings.TrimPrefix(digest, "sha256:"), "archive.info")
	b, err := os.ReadFile(info)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	json.Unmarshal(b, &v)
	v["created"] = time.Now().Add(-2 * gcGrace).UTC()
	b, _ = json.Marshal(v)
	if err := os.WriteFile(info, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return digest
}

func TestStateLostContainersRebuiltFromDisk(t *testing.T) {
	for _, damage := range []string{"destroyed with its copies", "containers leaf damaged, copy older"} {
		t.Run(damage, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			n := newNode(t, dir)
			web, db, unused := push(t, n, "web"), push(t, n, "db"), push(t, n, "unused")
			for name, img := range map[string]string{"web": web, "db": db} {
				if _, err := n.svc.PutContainer(ctx, name, api.ContainerRequest{Image: img}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := n.svc.StopContainer(ctx, "web"); err != nil {
				t.Fatal(err)
			}
			n.close(t)
			statePath := filepath.Join(dir, "state.db")
			switch damage {
			case "destroyed with its copies":
				os.Remove(statePath)
				os.RemoveAll(statePath + ".copies")
			default:
				// The only good copy is the first, taken before any container.
				copies, _ := filepath.Glob(statePath + ".copies/*.db")
				slices.Sort(copies)
				for _, c := range copies[1:] {
					os.Remove(c)
				}
				f, err := boltpage.Read(statePath)
				if err != nil {
					t.Fatal(err)
				}
				// Two containers fit inline in the root bucket's leaf: the
				// end of the containers bucket's value is web's record.
				p, _ := f.Find(boltpage.Leaf, "")
				for _, e := range p.Elems {
					if string(e.Key) == "containers" {
						f.Flip(p.ID, e.ValOff+e.ValLen-20, 2)
					}
				}
			}

			n = newNode(t, dir) // the boot after
			defer n.close(t)
			if len(n.db.Recoveries()) == 0 {
				t.Fatalf("state.db was not recovered")
			}
			w := n.svc.Restore()
			for _, name := range []string{"web", "db"} {
				if !slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "container "+name+" was rebuilt") }) {
					t.Errorf("Restore warnings = %q, want one saying %s was rebuilt", w, name)
				}
			}
			cs, err := n.svc.Containers(ctx)
			if err != nil || len(cs) != 2 {
				t.Fatalf("Containers() = %+v, %v, want web and db", cs, err)
			}
			for _, c := range cs {
				if c.Desired != "stopped" || (c.Name == "web" && c.Image != web) || (c.Name == "db" && c.Image != db) {
					t.Errorf("rebuilt %+v, want stopped with its image", c)
				}
			}
			imgs, _ := n.svc.Images(ctx)
			var have []string
			for _, i := range imgs {
				have = append(have, i.Digest)
			}
			if !slices.Contains(have, web) || !slices.Contains(have, db) {
				t.Errorf("images after Restore = %v, want %s and %s kept (their roots are on disk)", have, web, db)
			}
			if slices.Contains(have, unused) {
				t.Errorf("images after Restore = %v, want the unused %s collected", have, unused)
			}
			if _, err := n.svc.StartContainer(ctx, "web"); err != nil {
				t.Errorf("StartContainer(rebuilt web) = %v", err)
			}
		})
	}
}

// A root on disk whose image is not known (made before disk records)
// stops the collection: it may use any image.
func TestCollectSkippedForAnUnknownRoot(t *testing.T) {
	dir := t.TempDir()
	n := newNode(t, dir)
	defer n.close(t)
	unused := push(t, n, "unused")
	os.MkdirAll(filepath.Join(dir, "data", "containers", "legacy"), 0o755)
	w := n.svc.Restore()
	if !slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "images were not collected") }) {
		t.Errorf("Restore warnings = %q, want the collection skipped", w)
	}
	if _, err := n.svc.Image(context.Background(), unused); err != nil {
		t.Errorf("Image(%s) = %v, want it kept", unused, err)
	}
	if err := n.svc.RemoveContainer(context.Background(), "legacy"); err != nil {
		t.Errorf("RemoveContainer(a root without a record) = %v", err)
	}
	if w := n.svc.Restore(); len(w) != 0 {
		t.Errorf("Restore after removing it = %q, want no warning", w)
	}
}
