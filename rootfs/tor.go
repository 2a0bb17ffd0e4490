package rootfs

// The tor closure is what the appliance needs to run tor: the binary at
// TorExe (or a symlink there to a --tor binary), its ELF interpreter,
// the libraries its DT_NEEDED entries name (recursively), and
// TorDlopened. mkimage puts each at the path it has on the build host,
// so the loader finds them where the binary expects them. Nothing of
// /usr/share/tor goes in: the generated torrc turns GeoIP off, and an
// onion service needs nothing else from there.

// TorDlopened are libraries glibc loads at run time, which no DT_NEEDED
// names: glibc's pthread_exit and pthread_cancel dlopen libgcc_s.so.1
// to unwind the thread, and abort ("libgcc_s.so.1 must be installed for
// pthread_exit to work") without it; tor calls pthread_exit. mkimage
// adds them when the closure holds glibc and the build host has them.
var TorDlopened = []string{"libgcc_s.so.1"}
