package apps

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"allium/internal/safe"
	"allium/state"
)

// Boot-loop protection. A container that takes the node down soon after
// it starts (it crashes the kernel, or gets the node powered off) would
// do so again at every boot, since the boot restores it. So each start
// is recorded (its boot and time, with the restart history the start
// event writes anyway: no extra write), and the node marks itself alive
// (state.Alive) BootLoopWindow after a start it survived, and when a
// shutdown begins, saying who asked. The next boot judges each container
// the operator wants running from its record and the previous boot's
// last mark:
//
//	started in the previous boot?     no  -> Downs = 0
//	a mark of that boot at least      yes -> Downs = 0 (it survived the
//	  BootLoopWindow after the start,          window, or the operator
//	  or an operator's shutdown?               asked for the shutdown)
//	otherwise                         Downs + 1; at bootLoopLimit: held
//
// A held container stays desired running but is not started; `cloud ps`
// and `cloud info` say why, and an operator's start clears it.

// BootLoopWindow is how soon after a container's start the end of a
// boot counts against it. The poison of issue 10 took 3 s; the window is
// wider, for a slow node (QEMU without KVM) and a workload that does
// some work first.
const BootLoopWindow = 30 * time.Second

// bootLoopLimit is how many boots in a row must end within the window of
// a container's start before the next boot holds it.
const bootLoopLimit = 2

// ShutdownOperator is the Shutdown cause of a shutdown the API asked
// for: the operator knew, and it counts against no container.
const ShutdownOperator = "operator"

// judge is boot-loop protection's decision at boot boot for a container
// the operator wants running, from its record b and prev, the last mark
// the previous boot left; window is BootLoopWindow. It returns b
// updated: Downs counted or reset, Held set once Downs reaches
// bootLoopLimit. A held container stays held until an operator starts
// it.
func judge(name string, b state.BootLoop, boot uint64, prev state.Alive, window time.Duration) state.BootLoop {
	if b.Held != "" {
		return b
	}
	if b.Boot == 0 || b.Boot+1 != boot || !downSoon(b, prev, window) {
		b.Downs = 0
		return b
	}
	b.Downs++
	if b.Downs >= bootLoopLimit {
		b.Held = fmt.Sprintf("held by boot-loop protection: the node went down within %v of its start at %d boots in a row (the last, boot %d, at %s); not started at boot %d. `cloud start NODE %s` starts it again",
			window, b.Downs, b.Boot, b.Started.UTC().Format(time.RFC3339), boot, name)
	}
	return b
}

// downSoon reports whether the boot of b's last start ended within
// window of it, as far as prev tells: without a mark of that boot, it
// ended before any start there survived the window and before a
// shutdown began.
func downSoon(b state.BootLoop, prev state.Alive, window time.Duration) bool {
	if prev.Boot != b.Boot {
		return true
	}
	if prev.Shutdown == ShutdownOperator {
		return false
	}
	return prev.Time.Sub(b.Started) < window
}

// aliveMarker writes the boot's Alive mark window after the starts it
// is told of, once for a burst of them (a start during the wait re-arms
// it once the mark is written, so a crash-looping container cannot put
// the mark off forever), and a last one when the shutdown begins.
type aliveMarker struct {
	log    *slog.Logger
	db     *state.DB
	boot   uint64
	window time.Duration

	mu     sync.Mutex
	latest time.Time   // the latest start
	timer  *time.Timer // pending mark; nil when none
	done   bool        // the shutdown's mark is written: no more
}

// started is told of a start at t.
func (m *aliveMarker) started(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done {
		return
	}
	if t.After(m.latest) {
		m.latest = t
	}
	if m.timer == nil {
		m.timer = time.AfterFunc(time.Until(t.Add(m.window)), m.fire)
	}
}

func (m *aliveMarker) fire() {
	safe.Run(m.log, "boot-loop mark", func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.timer = nil
		if m.done {
			return
		}
		now := time.Now()
		m.write(state.Alive{Boot: m.boot, Time: now})
		if wait := m.latest.Add(m.window).Sub(now); wait > 0 {
			m.timer = time.AfterFunc(wait, m.fire)
		}
	})
}

// shutdown writes the last mark, saying who asked for the shutdown.
func (m *aliveMarker) shutdown(by string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
	m.done = true
	m.write(state.Alive{Boot: m.boot, Time: time.Now(), Shutdown: by})
}

func (m *aliveMarker) write(a state.Alive) {
	if m.db == nil || m.boot == 0 {
		return
	}
	if err := m.db.SetAlive(a); err != nil {
		m.log.Error("apps: boot-loop protection: recording that the node is up", "err", err)
	}
}
