package main

import "strings"

// cmdline is the kernel command line as key=value pairs. A bare word maps
// to "". The last occurrence of a key wins, as in the kernel.
type cmdline map[string]string

// parseCmdline splits a kernel command line. Double quotes group words
// with spaces (`key="a b"`) and are removed, as the kernel does.
func parseCmdline(s string) cmdline {
	c := cmdline{}
	for _, word := range splitQuoted(s) {
		k, v, _ := strings.Cut(word, "=")
		if k != "" {
			c[k] = v
		}
	}
	return c
}

func splitQuoted(s string) []string {
	var words []string
	var cur strings.Builder
	inQuote, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote, inWord = !inQuote, true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
