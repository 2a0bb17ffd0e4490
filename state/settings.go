package state

import bolt "go.etcd.io/bbolt"

// keyTCP records the operator's choice for the TCP listener, made at run
// time; absent means the baked node.json decides.
var keyTCP = []byte("tcp")

// TCP returns the operator's run-time choice for the API's TCP
// listener: set is false when none was made.
func (db *DB) TCP() (enabled, set bool, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		v, err := get(tx.Bucket(bucketMeta), bucketMeta, keyTCP)
		set = len(v) == 1
		enabled = set && v[0] == 1
		return err
	})
	return enabled, set, err
}

// SetTCP records the operator's choice for the TCP listener.
func (db *DB) SetTCP(enabled bool) error {
	v := []byte{0}
	if enabled {
		v[0] = 1
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		return put(tx.Bucket(bucketMeta), bucketMeta, keyTCP, v)
	})
}
