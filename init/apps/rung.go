package apps

import (
	"allium/api"
	"allium/manifest"
	"allium/supervisor"
	"allium/supervisor/isolation"
)

// rungFor picks a container's rung of the isolation ladder: the highest
// the node's kernel and the supervisor both have. A manifest whose
// isolation.minimum is above it is refused, naming what is missing.
func (a *Service) rungFor(name string, m *manifest.Manifest) (isolation.Rung, error) {
	iso := a.iso()
	rung := min(iso.Highest, supervisor.MaxRung)
	if m.Isolation.Minimum == "" {
		return rung, nil
	}
	want, err := isolation.ParseRung(m.Isolation.Minimum)
	if err != nil {
		return 0, api.BadRequest("%s: manifest.json: %v", name, err)
	}
	if want <= rung {
		return rung, nil
	}
	why := iso.Missing(want)
	if why == "" {
		why = "this node's supervisor runs containers at " + supervisor.MaxRung.String() + " at most"
	}
	return 0, api.Conflict("%s needs isolation %s (isolation.minimum), and this node runs containers at %s: %s is missing (%s)",
		name, want, rung, rungAbove(rung), why)
}

// supports refuses what a manifest asks that this node cannot give:
// resource limits without cgroups. (A private network: placeNet.)
func (a *Service) supports(name string, m *manifest.Manifest) error {
	r := m.Resources
	if (r.Memory != 0 || r.Pids != 0 || r.CPUWeight != 0) && !a.sup.HasCgroups() {
		why := a.iso().CgroupsMissing()
		if why == "" {
			why = "its cgroup hierarchy could not be set up (see cloud info)"
		}
		return api.Conflict("%s: resources (memory, pids, cpu_weight) need cgroups, which this node lacks: %s", name, why)
	}
	return nil
}

// rungAbove names the rung above r, the first one missing.
func rungAbove(r isolation.Rung) string {
	if r >= isolation.Cgroups {
		return r.String()
	}
	return (r + 1).String()
}
