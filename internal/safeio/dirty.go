package safeio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// DirtyBytes returns how much written data the kernel holds that has not reached the disk
// yet, on every file system: the Dirty and Writeback lines of /proc/meminfo (Linux), or, where
// /proc shows only processes (systemd's ProcSubset=pid, as tern's unit sets), the sum of those
// of every NUMA node in /sys/devices/system/node. It is what a syncfs(2) of a file system may
// have to wait for, at most. Where neither can be read, the error matches
// errors.ErrUnsupported.
func DirtyBytes() (int64, error) {
	return dirtyBytes("/proc/meminfo", "/sys/devices/system/node/node*/meminfo")
}

// dirtyBytes is DirtyBytes with the files it reads: meminfo, or those nodes matches.
func dirtyBytes(meminfo, nodes string) (int64, error) {
	b, err := os.ReadFile(meminfo)
	if err == nil {
		return parseDirty(b)
	}
	nodeFiles, _ := filepath.Glob(nodes)
	if len(nodeFiles) == 0 {
		return 0, fmt.Errorf("%w: %w", errors.ErrUnsupported, err)
	}
	var total int64
	for _, node := range nodeFiles {
		b, err := os.ReadFile(node)
		if err != nil {
			return 0, err
		}
		n, err := parseDirty(b)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", node, err)
		}
		total += n
	}
	return total, nil
}

// parseDirty adds up the Dirty and Writeback lines of a /proc/meminfo, or of a node's meminfo
// in /sys, whose lines start with "Node N ".
func parseDirty(meminfo []byte) (int64, error) {
	var total int64
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		line := sc.Bytes()
		if after, ok := bytes.CutPrefix(line, []byte("Node ")); ok {
			if _, after, ok = bytes.Cut(after, []byte(" ")); ok {
				line = after
			}
		}
		name, rest, ok := bytes.Cut(line, []byte(":"))
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
