package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// sizeFlag is a byte count written as 512M, 1G or 2GiB (powers of 1024).
// It is a pflag.Value, so a bad size is a usage error naming the flag.
type sizeFlag int64

// minDataSize is the smallest data disk worth having: below 4M mkfs.ext4
// makes no journal.
const minDataSize = 8 << 20

var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}, {"", 0}}

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	if n < minDataSize {
		return fmt.Errorf("%s is too small: the data disk needs at least 8M", v)
	}
	*s = sizeFlag(n)
	return nil
}

func (s *sizeFlag) String() string { return formatSize(int64(*s)) }

func (s *sizeFlag) Type() string { return "size" }

// parseSize reads "512M", "2G", "1GiB", "64k" or a plain number of bytes.
// The result is a whole number of KiB, which is what mkfs.ext4 takes.
func parseSize(v string) (int64, error) {
	s := strings.ToUpper(strings.TrimSpace(v))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "B"), "I")
	for _, u := range sizeUnits {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n <= 0 || n > 1<<(62-u.shift) {
			break
		}
		if n <<= u.shift; n%1024 != 0 {
			return 0, fmt.Errorf("%q: not a whole number of KiB (e.g. 512M, 1G)", v)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%q: not a size (e.g. 512M, 1G, 2G)", v)
}

// formatSize writes n in the largest unit that divides it: 1G, 512M.
func formatSize(n int64) string {
	for _, u := range sizeUnits {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// humanSize writes n for people: 3.1M, 14M, 1.0G.
func humanSize(n int64) string {
	units := "KMGT"
	if n < 1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	f, i := float64(n)/1024, 0
	for f >= 1024 && i < len(units)-1 {
		f, i = f/1024, i+1
	}
	if f < 10 {
		return fmt.Sprintf("%.1f%c", f, units[i])
	}
	return fmt.Sprintf("%.0f%c", f, units[i])
}

// choiceFlag is a string that must be one of a few values.
type choiceFlag struct {
	value   string
	choices []string
}

func (c *choiceFlag) Set(v string) error {
	if !slices.Contains(c.choices, v) {
		return fmt.Errorf("%q: want one of %s", v, strings.Join(c.choices, ", "))
	}
	c.value = v
	return nil
}

func (c *choiceFlag) String() string { return c.value }

func (c *choiceFlag) Type() string { return strings.Join(c.choices, "|") }
