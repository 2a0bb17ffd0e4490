package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
)

// Values are sealed: the stored bytes are the payload and a CRC-32C of
// the bucket's name, the key and the payload. bbolt checksums only its
// meta pages, so without this a flipped byte in a value (or a key) would
// decode as something else, or fail on every use. A value that does not
// unseal is damage (ErrCorrupt), found by verify at open and by any
// accessor on use.
//
//	payload | crc32c(bucket 0x00 key 0x00 payload) big-endian, 4 bytes

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func sum(bucket, key, payload []byte) uint32 {
	h := crc32.New(castagnoli)
	h.Write(bucket)
	h.Write([]byte{0})
	h.Write(key)
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum32()
}

func seal(bucket, key, payload []byte) []byte {
	out := make([]byte, 0, len(payload)+4)
	out = append(out, payload...)
	return binary.BigEndian.AppendUint32(out, sum(bucket, key, payload))
}

var errChecksum = errors.New("checksum mismatch")

// unseal returns the payload of a sealed value. It aliases v, which
// lives only as long as its transaction.
func unseal(bucket, key, v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, corrupt(where(bucket, key), fmt.Errorf("value of %d bytes is too short to be sealed", len(v)))
	}
	payload := v[:len(v)-4]
	if binary.BigEndian.Uint32(v[len(v)-4:]) != sum(bucket, key, payload) {
		return nil, corrupt(where(bucket, key), errChecksum)
	}
	return payload, nil
}

func where(bucket, key []byte) string {
	return fmt.Sprintf("%s/%q", bucket, key)
}

// put stores payload sealed under key.
func put(b *bolt.Bucket, bucket, key, payload []byte) error {
	return b.Put(key, seal(bucket, key, payload))
}

// get returns the unsealed payload under key, nil when there is none.
func get(b *bolt.Bucket, bucket, key []byte) ([]byte, error) {
	v := b.Get(key)
	if v == nil {
		return nil, nil
	}
	return unseal(bucket, key, v)
}

// each calls f with every key and unsealed payload of b, in order.
func each(b *bolt.Bucket, bucket []byte, f func(k, payload []byte) error) error {
	return b.ForEach(func(k, v []byte) error {
		p, err := unseal(bucket, k, v)
		if err != nil {
			return err
		}
		return f(k, p)
	})
}
