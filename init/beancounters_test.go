package main

import "testing"

// An OpenVZ 6 container with vSwap (1 GiB of RAM, 512 MiB of swap), as
// /proc/user_beancounters shows it inside the container.
const vswapBeancounters = `Version: 2.5
       uid  resource                     held              maxheld              barrier                limit              failcnt
      101:  kmemsize                 12345678             14567890  9223372036854775807  9223372036854775807                    0
            lockedpages                     0                    0                  256                  256                    0
            privvmpages                 71234                83456  9223372036854775807  9223372036854775807                    0
            shmpages                      672                 1328  9223372036854775807  9223372036854775807                    0
            dummy                           0                    0                    0                    0                    0
            numproc                        31                   52  9223372036854775807  9223372036854775807                    0
            physpages                   40960                65536                    0               262144                    0
            vmguarpages                     0                    0               262144  9223372036854775807                    0
            oomguarpages                24321                30123               262144  9223372036854775807                    0
            swappages                       0                    0                    0               131072                    0
`

// An older container limited by privvmpages (256 MiB guaranteed, with
// burst to 512 MiB), physpages unlimited.
const ubcBeancounters = `Version: 2.5
       uid  resource                     held              maxheld              barrier                limit              failcnt
      202:  kmemsize                  2670888              3284456             14372700             14790164                    0
            privvmpages                 14380                23056                65536               131072                    0
            physpages                   11013                17088                    0  9223372036854775807                    0
`

// The host's own block (ve0): nothing limited.
const hostBeancounters = `Version: 2.5
       uid  resource                     held              maxheld              barrier                limit              failcnt
        0:  kmemsize                 32661504             40062976  9223372036854775807  9223372036854775807                    0
            privvmpages                 98765               123456  9223372036854775807  9223372036854775807                    0
            physpages                  234567               345678  9223372036854775807  9223372036854775807                    0
      101:  physpages                   11013                17088                    0               262144                    0
`

func TestBeancounterMemory(t *testing.T) {
	for _, tc := range []struct {
		name        string
		text        string
		total, held uint64
		ok          bool
	}{
		{"vswap", vswapBeancounters, 1 << 30, 40960 * 4096, true},
		{"privvmpages", ubcBeancounters, 256 << 20, 14380 * 4096, true},
		{"host", hostBeancounters, 0, 0, false},
		{"none", "", 0, 0, false},
		{"garbage", "Version: 2.5\n  101: physpages x y z w v\n", 0, 0, false},
	} {
		total, held, ok := beancounterMemory(tc.text, 4096)
		if total != tc.total || held != tc.held || ok != tc.ok {
			t.Errorf("beancounterMemory(%s) = %d, %d, %v, want %d, %d, %v", tc.name, total, held, ok, tc.total, tc.held, tc.ok)
		}
	}
}

func FuzzBeancounterMemory(f *testing.F) {
	f.Add(vswapBeancounters)
	f.Add(ubcBeancounters)
	f.Fuzz(func(t *testing.T, text string) {
		total, held, ok := beancounterMemory(text, 4096)
		if !ok && (total != 0 || held != 0) {
			t.Errorf("beancounterMemory = %d, %d, false; want zeros when not ok", total, held)
		}
	})
}
