package apps

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"allium/api"
	"allium/internal/safe"
	"allium/state"
	"allium/supervisor"
)

// eventHub records events in state.db and fans them out to followers
// of GET /v1/events. The supervisor's events arrive on a channel (its
// callback must not block), and one goroutine records them, in order,
// together with the restart history they carry.
//
//	supervisor ──OnEvent──> in ──record──> state.db (event log, history)
//	apps ──publish────────┘          └──> followers (dropped if too slow)
type eventHub struct {
	log *slog.Logger
	db  *state.DB
	in  chan supervisor.Event
	// boot and alive: each start is recorded with the boot's count,
	// and told to the marker (boot-loop protection).
	boot  uint64
	alive *aliveMarker
	// pending counts events queued and not yet recorded, for drain.
	pending sync.WaitGroup

	mu        sync.Mutex
	followers map[chan api.Event]struct{}
}

func newEventHub(log *slog.Logger, db *state.DB, boot uint64, alive *aliveMarker) *eventHub {
	h := &eventHub{log: log, db: db, in: make(chan supervisor.Event, 1024), followers: map[chan api.Event]struct{}{},
		boot: boot, alive: alive}
	safe.Go(log, "events", h.loop)
	return h
}

// onSupervisor is the supervisor's OnEvent: it never blocks. If the
// channel is full (a state.db that stalls), the event is logged instead.
func (h *eventHub) onSupervisor(e supervisor.Event) {
	h.pending.Add(1)
	select {
	case h.in <- e:
	default:
		h.pending.Done()
		h.log.Warn("events: dropped", "container", e.Container, "type", e.Type, "message", e.Message)
	}
}

func (h *eventHub) loop() {
	for e := range h.in {
		h.record(e)
	}
}

func (h *eventHub) record(e supervisor.Event) {
	defer h.pending.Done()
	h.saveHistory(e)
	h.publish(toEvent(e))
}

// drain waits, up to limit, until every queued event is recorded: the
// shutdown calls it after stopping the containers and before closing
// state.db, so their last exits are kept.
func (h *eventHub) drain(limit time.Duration) {
	done := make(chan struct{})
	safe.Go(h.log, "events: drain", func() {
		h.pending.Wait()
		close(done)
	})
	select {
	case <-done:
	case <-time.After(limit):
		h.log.Warn("events: not all recorded before shutdown")
	}
}

// saveHistory keeps the restart history in state.db, so counters and
// the last exit survive a reboot. A removed container has none. A
// start is recorded with it, for boot-loop protection.
func (h *eventHub) saveHistory(e supervisor.Event) {
	if e.Type == supervisor.EventRemove {
		return
	}
	b, err := json.Marshal(e.History)
	if err != nil {
		return
	}
	start := e.Type == supervisor.EventStart && h.boot != 0
	at := e.Time
	if at.IsZero() {
		at = time.Now()
	}
	if start && h.alive != nil {
		h.alive.started(at)
	}
	if _, err := h.db.UpdateContainer(e.Container, func(c *state.Container) {
		c.History = b
		if start {
			c.BootLoop.Boot, c.BootLoop.Started = h.boot, at.UTC()
		}
	}); err != nil {
		h.log.Error("events: saving the history", "container", e.Container, "err", err)
	}
}

func toEvent(e supervisor.Event) api.Event {
	out := api.Event{Time: e.Time, Type: string(e.Type), Container: e.Container, Message: e.Message}
	if x := e.Exit; x != nil {
		out.Exit = &api.Exit{Code: x.Code, Signal: x.Signal, Time: x.Time, OOM: x.OOM}
	}
	return out
}

// publish records ev and hands it to every follower.
func (h *eventHub) publish(ev api.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	h.log.Info("event", "type", ev.Type, "container", ev.Container, "message", ev.Message)
	// Recording and handing out happen under one lock, which stream
	// takes to subscribe and read the record: each event reaches a
	// follower once, from the record or from the channel.
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.db.AppendEvent(ev); err != nil {
		h.log.Error("events: recording", "err", err)
	}
	for ch := range h.followers {
		select {
		case ch <- ev:
		default: // a follower that does not keep up misses events
		}
	}
}

// stream emits the recorded events, then with follow the new ones until
// ctx ends or emit fails.
func (h *eventHub) stream(ctx context.Context, follow bool, emit func(api.Event) error) error {
	ch := make(chan api.Event, 256)
	h.mu.Lock()
	if follow {
		h.followers[ch] = struct{}{}
		defer func() {
			h.mu.Lock()
			delete(h.followers, ch)
			h.mu.Unlock()
		}()
	}
	raw, err := h.db.Events()
	h.mu.Unlock()
	if err != nil {
		return err
	}
	for _, r := range raw {
		var ev api.Event
		if json.Unmarshal(r, &ev) != nil {
			continue
		}
		if err := emit(ev); err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-ch:
			if err := emit(ev); err != nil {
				return err
			}
		}
	}
}

// Record records an event of the node's own, such as an init received
// for an update, in state.db and hands it to the followers of
// GET /v1/events.
func (a *Service) Record(ev api.Event) { a.events.publish(ev) }
