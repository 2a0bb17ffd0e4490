package isolation

import (
	"encoding/json"
	"testing"
)

func TestRungNames(t *testing.T) {
	for i, name := range Rungs {
		r, err := ParseRung(name)
		if err != nil || r != Rung(i) || r.String() != name {
			t.Errorf("ParseRung(%q) = %v, %v; want rung %d", name, r, err, i)
		}
		b, _ := json.Marshal(r)
		var back Rung
		if err := json.Unmarshal(b, &back); err != nil || back != r {
			t.Errorf("JSON %s = %v, %v; want %v", b, back, err, r)
		}
	}
	if _, err := ParseRung("vm"); err == nil {
		t.Error("ParseRung(vm) = nil error")
	}
	if Rung(7).String() != "rung(7)" {
		t.Errorf("Rung(7) = %s", Rung(7))
	}
}
