package procstatus

import "testing"

func TestHex(t *testing.T) {
	const status = "Name:\tinit\nSigIgn:\t0000000080000000\nCapEff:\t000001ffffffffff\nCapBnd:\tzz\n"
	for _, tt := range []struct {
		key  string
		want uint64
		ok   bool
	}{
		{"CapEff", 0x1ffffffffff, true}, {"SigIgn", 0x80000000, true}, {"CapBnd", 0, false},
		{"CapPrm", 0, false}, {"Cap", 0, false},
	} {
		if got, ok := Hex(status, tt.key); got != tt.want || ok != tt.ok {
			t.Errorf("Hex(%s) = %#x, %v; want %#x, %v", tt.key, got, ok, tt.want, tt.ok)
		}
	}
}

func TestBytes(t *testing.T) {
	got := Bytes("MemTotal:        492000 kB\nMemAvailable:  400000 kB\nHugePages_Total: 0\nbad: x kB\n")
	if got["MemTotal"] != 492000*1024 || got["MemAvailable"] != 400000*1024 || len(got) != 2 {
		t.Errorf("Bytes = %v", got)
	}
}
