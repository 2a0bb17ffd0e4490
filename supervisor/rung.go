package supervisor

import "allium/supervisor/isolation"

// MaxRung is the highest rung of the isolation ladder this supervisor
// runs containers at; a node whose kernel allows more still runs them
// here (userns and cgroups are being built).
const MaxRung = isolation.Namespaces
