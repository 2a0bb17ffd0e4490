package main

import (
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"

	"allium/internal/safe"
)

// An ACPI power button press (a VPS panel's "shut down", QEMU's
// system_powerdown) arrives as an evdev key event once button.ko and
// evdev.ko are loaded.
const (
	evKey     = 1
	keyPower  = 116
	eventSize = 24 // struct input_event on 64-bit: timeval(16) type(2) code(2) value(4)
)

// watchPowerButtons starts a reader for every input device that calls
// itself a power button.
func (n *node) watchPowerButtons(root string) {
	matches, _ := filepath.Glob(filepath.Join(root, "sys/class/input/event*/device/name"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil || !strings.Contains(string(b), "Power Button") {
			continue
		}
		ev := filepath.Base(filepath.Dir(filepath.Dir(m)))
		dev := filepath.Join(root, "dev/input", ev)
		// Open before saying so: a press before the open reaches no one.
		// (Regression: the line came first, and a test that pressed on
		// seeing it lost the press on a loaded machine.)
		f, err := os.Open(dev)
		if err != nil {
			n.log.Warn("power button: cannot open", "device", dev, "err", err)
			continue
		}
		n.log.Info("power button", "device", dev, "name", strings.TrimSpace(string(b)))
		safe.Go(n.log, "power button "+ev, func() { n.readPowerButton(f) })
	}
}

func (n *node) readPowerButton(f *os.File) {
	defer f.Close()
	if isPowerPress(f) {
		n.log.Info("power button pressed: powering off")
		n.requestPower(powerOff, "power button")
	}
}

// isPowerPress reads events until a power key press, and reports whether
// it saw one before the stream ended.
func isPowerPress(r io.Reader) bool {
	buf := make([]byte, eventSize)
	for {
		if _, err := io.ReadFull(r, buf); err != nil {
			return false
		}
		typ := binary.NativeEndian.Uint16(buf[16:])
		code := binary.NativeEndian.Uint16(buf[18:])
		value := int32(binary.NativeEndian.Uint32(buf[20:]))
		if typ == evKey && code == keyPower && value == 1 {
			return true
		}
	}
}
