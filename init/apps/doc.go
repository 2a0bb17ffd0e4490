// Package apps is the node's application service: images and
// containers, as api.Apps. It joins the image store (uploads, the unpack
// helper, GC), the supervisor (running containers), state.db (what the
// operator asked for: image, running or not, restart history; the event
// log) and the containers' roots on the data root:
//
//	API ──api.Apps──> Service ──> imagestore.Store  (images/, uploads/)
//	                     │──────> supervisor          (shims, restarts, logs/)
//	                     │──────> roots               (containers/, overlay/, volumes/)
//	                     └──────> eventHub ──> state.db (history, events) ──> followers
//
// It owns: turning an image into a container (its root an overlay on
// the image, or a copy where overlayfs is missing; its volumes bound),
// the node's upload limits (setuid files allowed when asked, devices
// not), garbage collection of unused images, restoring the recorded
// containers at boot (Restore), and stopping them at shutdown (Stop).
//
// state.db is not the only record of a container: each root keeps
// overlay/NAME/container.json (image, ids; disk.go). A container on
// disk that state.db lacks after a recovery is recorded again from it,
// stopped, and said so (Restore at boot, Resync at run time). Image
// collection keeps every image a record or a root on disk names, and
// collects nothing when state.db is unreadable or a root's image is
// not known.
//
// It does not own booting, the reaper, signals or the listeners (init
// wires a Service with its reaper as the Starter and its kernel seam as
// the Mounter), the HTTP protocol (api), or the restart policy
// (supervisor/restart). A test can import it: bbolt in a temporary
// directory, the real unpack helper, and testkit.Starter for the
// reaper.
package apps
