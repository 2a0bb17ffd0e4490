// Package mountinfo reads /proc/self/mountinfo: which mount points lie
// below a directory, for PID 1's shutdown (the data root's children) and
// for the containers' roots.
package mountinfo
