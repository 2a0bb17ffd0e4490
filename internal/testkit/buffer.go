package testkit

import (
	"bytes"
	"sync"
)

// LockedBuffer is a bytes.Buffer that goroutines (a logger, a child
// process's output) write while the test reads it. The zero value is an
// empty buffer ready to use; it must not be copied after first use.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what has been written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
