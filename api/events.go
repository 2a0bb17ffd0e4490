package api

import "time"

// Wire types of the event stream:
//
//	GET    /v1/events?follow=1      application/x-ndjson, one Event per line

// Event types.
const (
	EventStart     = "start"
	EventReady     = "ready"
	EventExit      = "exit"
	EventOOM       = "oom" // a run hit its memory limit (before its exit)
	EventRestart   = "restart_scheduled"
	EventCrashloop = "crashloop"
	EventStop      = "stop"
	EventSignal    = "signal"
	EventRemove    = "remove"
	EventImage     = "image"
	EventError     = "error"
	EventUpdate    = "update" // a new init received: accepted or refused
)

// Event is something that happened to a container, an image or the
// node's init.
type Event struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Container string    `json:"container,omitempty"`
	Image     string    `json:"image,omitempty"`
	Message   string    `json:"message"`
	Exit      *Exit     `json:"exit,omitempty"`
}
