package supervisor

import "allium/supervisor/isolation"

// MaxRung is the highest rung of the isolation ladder this supervisor
// runs containers at: all of them.
const MaxRung = isolation.Cgroups
