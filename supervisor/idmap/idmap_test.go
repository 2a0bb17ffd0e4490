package idmap

import (
	"errors"
	"testing"
)

func TestNext(t *testing.T) {
	r := func(i uint32) Range { return Range{Base: First + i*Size, Size: Size} }
	tests := []struct {
		name string
		used []Range
		want Range
	}{
		{"none", nil, r(0)},
		{"the first taken", []Range{r(0)}, r(1)},
		{"a gap", []Range{r(0), r(2)}, r(1)},
		{"host ids and zero ranges are not in the way", []Range{Host, {}, {Base: 5000, Size: 10}}, r(0)},
		{"an unaligned range takes both it overlaps", []Range{{Base: First + Size/2, Size: Size}}, r(2)},
		{"a double range", []Range{{Base: First, Size: 2 * Size}}, r(2)},
	}
	for _, tt := range tests {
		if got, err := Next(tt.used); err != nil || got != tt.want {
			t.Errorf("%s: Next(%v) = %v, %v; want %v", tt.name, tt.used, got, err, tt.want)
		}
	}
	all := []Range{{Base: First, Size: maxRanges * Size}}
	if got, err := Next(all); !errors.Is(err, ErrFull) {
		t.Errorf("Next(everything) = %v, %v; want ErrFull", got, err)
	}
}

func TestMapAndRangeOf(t *testing.T) {
	a := Range{Base: First, Size: Size}
	b := Range{Base: First + 3*Size, Size: Size}
	tests := []struct {
		to, from Range
		id, want uint32
	}{
		{a, Host, 0, First},
		{a, Host, 1000, First + 1000},
		{a, Host, Size, Size},                 // outside from: as it is
		{b, a, First + 7, First + 3*Size + 7}, // range to range
		{Host, b, First + 3*Size + 7, 7},      // back to the host's
		{Range{}, b, First + 3*Size + 7, 7},   // the zero Range is the host's
	}
	for _, tt := range tests {
		if got := tt.to.Map(tt.from, tt.id); got != tt.want {
			t.Errorf("%v.Map(%v, %d) = %d, want %d", tt.to, tt.from, tt.id, got, tt.want)
		}
	}
	for id, want := range map[uint32]Range{0: Host, Size - 1: Host, Size: {}, First - 1: {}, First: a, First + 3*Size + 9: b} {
		if got := RangeOf(id); got != want {
			t.Errorf("RangeOf(%d) = %v, want %v", id, got, want)
		}
	}
	if a.String() != "1048576-1114111" || (Range{}).String() != "host" {
		t.Errorf("String: %q, %q", a, Range{})
	}
}
