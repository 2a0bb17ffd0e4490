package state

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

// keyAlive holds the latest Alive mark.
var keyAlive = []byte("alive")

// Alive is the latest moment a boot is known to have been up: the node
// writes it some time after a container's start (the start survived)
// and when a shutdown begins. The next boot reads it to learn how soon
// after its containers' starts the previous one ended (boot-loop
// protection). The zero Alive means no mark was ever written.
type Alive struct {
	// Boot is the boot count of the boot that wrote it.
	Boot uint64 `json:"boot"`
	// Time is when it was written.
	Time time.Time `json:"time"`
	// Shutdown is why the boot went down, when it did so in order:
	// "operator" (the API asked), or what asked (a signal, the power
	// button). "" while the boot ran, and after an unclean end.
	Shutdown string `json:"shutdown,omitempty"`
}

// SetAlive records a.
func (db *DB) SetAlive(a Alive) error {
	v, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		return put(tx.Bucket(bucketMeta), bucketMeta, keyAlive, v)
	})
}

// Alive returns the latest mark; the zero Alive when there is none or
// it is unreadable (a boot-loop decision then knows nothing of the
// previous boot's end, which is what an unclean end looks like).
func (db *DB) Alive() (Alive, error) {
	var a Alive
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v, err := get(tx.Bucket(bucketMeta), bucketMeta, keyAlive)
		if v != nil && json.Unmarshal(v, &a) != nil {
			a = Alive{}
		}
		return err
	})
	return a, err
}
