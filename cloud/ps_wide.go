package main

import (
	"context"
	"errors"
	"sync"

	"allium/api"
)

// psWideRequests is how many stats requests ps --wide has in flight at
// once: enough to hide a tor circuit's round trip, few enough not to
// queue up behind one another on the node.
const psWideRequests = 8

// statsOf asks the node for each container's stats, at most
// psWideRequests at a time, and returns them in cs's order. A container
// removed since the list (not found) gets zero stats, shown as "-"; any
// other failure is the command's.
func (s *session) statsOf(ctx context.Context, cs []api.Container) ([]api.ContainerStats, error) {
	stats := make([]api.ContainerStats, len(cs))
	errs := make([]error, len(cs))
	slots := make(chan struct{}, psWideRequests)
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			stats[i], errs[i] = s.client.ContainerStats(ctx, c.Name)
			stats[i].Name = c.Name
		})
	}
	wg.Wait()
	for _, err := range errs {
		var ae *api.Error
		if err != nil && !(errors.As(err, &ae) && ae.Code == api.CodeNotFound) {
			return nil, s.explain(err)
		}
	}
	return stats, nil
}

// psWide is a line of ps --wide --json: the container as the node
// describes it, and its stats.
type psWide struct {
	api.Container
	Stats *api.ContainerStats `json:"stats,omitempty"`
}

// psWideRows pairs cs with their stats (none without --wide).
func psWideRows(cs []api.Container, stats []api.ContainerStats) []psWide {
	rows := make([]psWide, len(cs))
	for i, c := range cs {
		rows[i].Container = c
		if stats != nil {
			rows[i].Stats = &stats[i]
		}
	}
	return rows
}
