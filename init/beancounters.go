package main

import (
	"math"
	"strconv"
	"strings"
)

// beancountersFile is where OpenVZ tells a container its resource
// limits, in /proc under the node's root. Memory there is counted in
// pages:
//
//	Version: 2.5
//	       uid  resource       held   maxheld   barrier     limit  failcnt
//	      101:  kmemsize    2670888   3284456  9223372036854775807 ...
//	            privvmpages   14380     23056    262144    262144        0
//	            physpages     11013     17088         0    262144        0
//
// An unlimited resource has LONG_MAX (9223372036854775807) as its
// barrier and limit.
const beancountersFile = "proc/user_beancounters"

// beancounterMemory is the memory an OpenVZ container may use, in bytes,
// from its user_beancounters: physpages' limit (its RAM, under vSwap),
// else privvmpages' barrier (what it may allocate, on older
// kernels), and how much of it is held now. ok is false where neither
// is limited (the host's own block, or no beancounters). Only the first
// block counts: a container sees its own alone.
func beancounterMemory(text string, pageSize uint64) (total, held uint64, ok bool) {
	res := map[string][]uint64{} // resource -> held, maxheld, barrier, limit, failcnt
	blocks := 0
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasSuffix(f[0], ":") {
			if f[0] == "Version:" {
				continue
			}
			if blocks++; blocks > 1 {
				break
			}
			f = f[1:]
		}
		if len(f) != 6 || blocks == 0 {
			continue
		}
		var v []uint64
		for _, s := range f[1:] {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				break
			}
			v = append(v, n)
		}
		if len(v) == 5 {
			res[f[0]] = v
		}
	}
	limited := func(n uint64) bool { return n > 0 && n < math.MaxInt64 }
	if v, found := res["physpages"]; found && limited(v[3]) {
		return v[3] * pageSize, v[0] * pageSize, true
	}
	if v, found := res["privvmpages"]; found && limited(v[2]) {
		return v[2] * pageSize, v[0] * pageSize, true
	}
	return 0, 0, false
}
