// Package procstatus reads the "Key:\tvalue" lines of /proc/PID/status
// and /proc/meminfo: hex masks (CapEff, SigIgn) and sizes in kB (VmRSS,
// MemAvailable). It takes the file's text, so that tests hand it theirs.
package procstatus
