package main

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// An MBR partition table (the classic one: four primary entries in the
// first sector), just enough for a disk of one Linux partition.
const (
	sectorSize     = 512
	mbrEntriesOff  = 446 // four 16-byte entries
	mbrDiskIDOff   = 440 // u32 disk signature
	mbrLinuxType   = 0x83
	mbrActive      = 0x80
	mbrMaxSectors  = 1<<32 - 1
	partitionStart = 1 << 20 // 1 MiB: the usual alignment
)

// mbrPartition is one primary entry.
type mbrPartition struct {
	Active  bool
	Type    byte
	Start   uint32 // first sector (LBA)
	Sectors uint32 // length in sectors
}

// mbr renders a boot sector holding parts (at most four) and signed
// 0x55AA. It holds no boot code: PyGrub and QEMU's direct kernel boot
// read the partition, never the sector's code.
func mbr(diskID uint32, parts ...mbrPartition) ([sectorSize]byte, error) {
	var s [sectorSize]byte
	if len(parts) > 4 {
		return s, fmt.Errorf("mbr: %d partitions, at most 4 fit", len(parts))
	}
	binary.LittleEndian.PutUint32(s[mbrDiskIDOff:], diskID)
	for i, p := range parts {
		if p.Start == 0 || p.Sectors == 0 {
			return s, fmt.Errorf("mbr: partition %d: start %d, %d sectors: both must be > 0", i+1, p.Start, p.Sectors)
		}
		if uint64(p.Start)+uint64(p.Sectors) > mbrMaxSectors+1 {
			return s, fmt.Errorf("mbr: partition %d ends past 2 TiB, beyond what an MBR addresses", i+1)
		}
		e := s[mbrEntriesOff+16*i:]
		if p.Active {
			e[0] = mbrActive
		}
		copy(e[1:4], chs(p.Start))
		e[4] = p.Type
		copy(e[5:8], chs(p.Start+p.Sectors-1))
		binary.LittleEndian.PutUint32(e[8:], p.Start)
		binary.LittleEndian.PutUint32(e[12:], p.Sectors)
	}
	s[510], s[511] = 0x55, 0xAA
	return s, nil
}

// chs is the cylinder-head-sector address of lba in the 255-head,
// 63-sector geometry, or FE FF FF (the conventional "use the LBA") when
// the cylinder is past 1023.
func chs(lba uint32) []byte {
	const heads, spt = 255, 63
	c := lba / (heads * spt)
	if c > 1023 {
		return []byte{0xfe, 0xff, 0xff}
	}
	h := (lba / spt) % heads
	sec := lba%spt + 1
	return []byte{byte(h), byte(sec) | byte(c>>8)<<6, byte(c)}
}

// parseMBR reads the entries of a boot sector back, skipping the empty
// ones: what a test and `mkimage qemu --disk` use to find the partition.
func parseMBR(s []byte) ([]mbrPartition, error) {
	if len(s) < sectorSize || s[510] != 0x55 || s[511] != 0xAA {
		return nil, errors.New("no MBR: the first sector is not signed 55 AA")
	}
	var parts []mbrPartition
	for i := range 4 {
		e := s[mbrEntriesOff+16*i:]
		if e[4] == 0 {
			continue
		}
		parts = append(parts, mbrPartition{
			Active: e[0] == mbrActive, Type: e[4],
			Start:   binary.LittleEndian.Uint32(e[8:]),
			Sectors: binary.LittleEndian.Uint32(e[12:]),
		})
	}
	return parts, nil
}
