package state

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketContainers = []byte("containers")

// Container is what the node remembers of a container across reboots.
type Container struct {
	Name string `json:"name"`
	// Image is the digest of the image it runs.
	Image string `json:"image"`
	// Running is the operator's wish: true after start, false after
	// stop. A boot restarts every container whose Running is true.
	Running bool `json:"running"`
	// History is the supervisor's restart history, opaque to state.
	History json.RawMessage `json:"history,omitempty"`
	// Isolation is the rung of the isolation ladder the container was
	// given ("chroot", "namespaces", ...); "" in a record written before
	// rungs were recorded.
	Isolation string `json:"isolation,omitempty"`
	// Address is the container's address on the node's bridge, kept
	// for its life (isolation.network private); "" with the node's
	// network.
	Address string `json:"address,omitempty"`
	// IDBase and IDSize are the host uids and gids the container's ids
	// map to at the userns rung (its own range, kept for its life: its
	// writable layer and volumes are owned by it); 0 below that rung.
	IDBase uint32 `json:"id_base,omitempty"`
	IDSize uint32 `json:"id_size,omitempty"`
	// BootLoop is what boot-loop protection remembers of it.
	BootLoop BootLoop `json:"boot_loop,omitzero"`
	// Created and Updated are set by PutContainer.
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// BootLoop is a container's record for boot-loop protection: its last
// start, and how many boots in a row ended soon after one. The zero
// BootLoop is a container never started, or cleared by an operator.
type BootLoop struct {
	// Boot and Started are its last start: the boot count and the time.
	Boot    uint64    `json:"boot,omitempty"`
	Started time.Time `json:"started,omitzero"`
	// Downs counts the boots in a row that ended soon after its last
	// start in them.
	Downs int `json:"downs,omitempty"`
	// Held, when not "", says why the boot did not start it although
	// the operator wants it running; an operator's start clears it.
	Held string `json:"held,omitempty"`
}

// PutContainer creates or replaces a container's record.
func (db *DB) PutContainer(c Container) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketContainers)
		var old Container
		v, err := get(b, bucketContainers, []byte(c.Name))
		if err != nil {
			return err
		}
		if v != nil && json.Unmarshal(v, &old) == nil {
			c.Created = old.Created
		}
		now := time.Now().UTC()
		if c.Created.IsZero() {
			c.Created = now
		}
		c.Updated = now
		if v, err = json.Marshal(c); err != nil {
			return err
		}
		return put(b, bucketContainers, []byte(c.Name), v)
	})
}

// UpdateContainer applies f to the record of name in one transaction.
// It reports false when there is no such container.
func (db *DB) UpdateContainer(name string, f func(*Container)) (bool, error) {
	found := false
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketContainers)
		v, err := get(b, bucketContainers, []byte(name))
		if v == nil || err != nil {
			return err
		}
		var c Container
		if err := json.Unmarshal(v, &c); err != nil {
			return corrupt(where(bucketContainers, []byte(name)), err)
		}
		found = true
		f(&c)
		c.Name, c.Updated = name, time.Now().UTC()
		nv, err := json.Marshal(c)
		if err != nil {
			return err
		}
		return put(b, bucketContainers, []byte(name), nv)
	})
	return found, err
}

// Containers returns every container's record, by name.
func (db *DB) Containers() ([]Container, error) {
	var out []Container
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return each(tx.Bucket(bucketContainers), bucketContainers, func(k, v []byte) error {
			var c Container
			if err := json.Unmarshal(v, &c); err != nil {
				return corrupt(where(bucketContainers, k), err)
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

// DeleteContainer forgets a container.
func (db *DB) DeleteContainer(name string) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketContainers).Delete([]byte(name))
	})
}
