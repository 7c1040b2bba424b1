package safeio

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"strconv"
)

// DirtyBytes returns how much written data the kernel holds that has not reached the disk
// yet, on every file system: the Dirty and Writeback lines of /proc/meminfo (Linux). It is
// what a syncfs(2) of a file system may have to wait for, at most. Where there is no
// /proc/meminfo, the error matches errors.ErrUnsupported.
func DirtyBytes() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if errors.Is(err, os.ErrNotExist) {
		return 0, errors.ErrUnsupported
	}
	if err != nil {
		return 0, err
	}
	return parseDirty(b)
}

// parseDirty adds up the Dirty and Writeback lines of a /proc/meminfo.
func parseDirty(meminfo []byte) (int64, error) {
	var total int64
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || string(name) != "Dirty" && string(name) != "Writeback" {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, errors.New("meminfo: unexpected " + string(name) + " line")
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, err
		}
		total += kb << 10
		found++
	}
	if found != 2 {
		return 0, errors.New("meminfo: no Dirty or Writeback line")
	}
	return total, nil
}
