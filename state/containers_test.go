package state

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
)

func openTest(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestContainersSurviveReopen(t *testing.T) {
	db, path := openTest(t)
	if err := db.PutContainer(Container{Name: "web", Image: "sha256:aa", Running: true}); err != nil {
		t.Fatal(err)
	}
	found, err := db.UpdateContainer("web", func(c *Container) {
		c.Running = false
		c.History = json.RawMessage(`{"restarts":3}`)
	})
	if !found || err != nil {
		t.Fatalf("UpdateContainer(web) = %v, %v", found, err)
	}
	if found, _ := db.UpdateContainer("nosuch", func(*Container) {}); found {
		t.Errorf("UpdateContainer(nosuch) found it")
	}
	db.Close()
	db2, err := Open(path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	cs, err := db2.Containers()
	if err != nil || len(cs) != 1 {
		t.Fatalf("Containers() = %v, %v", cs, err)
	}
	c := cs[0]
	if c.Name != "web" || c.Image != "sha256:aa" || c.Running || string(c.History) != `{"restarts":3}` || c.Created.IsZero() {
		t.Errorf("Containers()[0] = %+v", c)
	}
	if err := db2.DeleteContainer("web"); err != nil {
		t.Fatal(err)
	}
	if cs, _ := db2.Containers(); len(cs) != 0 {
		t.Errorf("Containers() after delete = %v", cs)
	}
}

func TestEventsAreBounded(t *testing.T) {
	db, _ := openTest(t)
	for i := range MaxEvents + 5 {
		if err := db.AppendEvent(map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := db.Events()
	if err != nil || len(evs) != MaxEvents {
		t.Fatalf("Events() = %d events, %v, want %d", len(evs), err, MaxEvents)
	}
	if got, want := string(evs[0]), fmt.Sprintf(`{"n":%d}`, 5); got != want {
		t.Errorf("Events()[0] = %s, want %s (the oldest dropped)", got, want)
	}
}
