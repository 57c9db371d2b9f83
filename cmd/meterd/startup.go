package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/meterd/meterd/ledger"
)

// Start-up checks that say loudly what the defaults would otherwise do
// quietly: an open /v1/* on a reachable address, and a disk floor that
// refuses every write on a small volume.

// warnOpenListener warns when meterd's own API listens beyond loopback
// with no service token. account_id is then refused, but /v1/* still
// takes any caller's API key: whoever reaches the address and holds or
// guesses a key records calls (and backdated events) in that account's
// name, indistinguishable from the API's own. The reverse proxy meters
// only by key and is meant to face clients, so it is not checked.
func (m *Main) warnOpenListener(ln net.Listener) {
	if m.Config.ServiceToken != "" {
		return
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
		return
	}
	m.log.Warn("no service token, and meterd's API listens beyond loopback: anyone who reaches this address "+
		"can call /v1/track, /v1/events and /v1/authz with any API key they hold and meter calls in that account's name; "+
		"set --service-token (METER_SERVICE_TOKEN) so only your API and gateway can meter, or listen on 127.0.0.1",
		"addr", ln.Addr().String())
}

// diskState describes the ledger's free space against --min-free-bytes:
// ok is false while writes are refused, and reason says why in words.
func (m *Main) diskState() (ok bool, detail map[string]any) {
	floor := m.ledger.MinFreeBytes()
	detail = map[string]any{"min_free_bytes": floor}
	if floor == 0 {
		return true, detail
	}
	free, err := m.ledger.FreeBytes()
	if err != nil {
		// A failing probe lets writes through (ledger/diskspace.go).
		detail["error"] = err.Error()
		return true, detail
	}
	detail["free_bytes"] = free
	if free < floor {
		detail["reason"] = fmt.Sprintf("the ledger's volume has %d bytes free, below the floor of %d (--min-free-bytes): "+
			"every write, account creation included, is refused with 503 disk_full until space is freed or the floor lowered", free, floor)
		return false, detail
	}
	return true, detail
}

// diskReady is the /readyz check of the disk floor.
func (m *Main) diskReady(context.Context) (bool, any) {
	return m.diskState()
}

// warnDiskFloor says at start-up, at error level, that the disk floor
// already refuses every write, or warns when less than twice the floor is
// free.
func (m *Main) warnDiskFloor() {
	ok, d := m.diskState()
	if !ok {
		m.log.Error("writes are refused: "+d["reason"].(string)+"; set --min-free-bytes (METER_MIN_FREE_BYTES) lower, or 0 to turn the floor off",
			"free_bytes", d["free_bytes"], "min_free_bytes", d["min_free_bytes"])
		return
	}
	if free, found := d["free_bytes"].(uint64); found && free < 2*m.ledger.MinFreeBytes() {
		m.log.Warn("the ledger's volume is close to the disk floor: writes will be refused with 503 disk_full below it",
			"free_bytes", free, "min_free_bytes", m.ledger.MinFreeBytes())
	}
}

// logRestored says at start-up that the ledger was made from a backup,
// and which epoch it is in.
func (m *Main) logRestored() {
	if e := m.ledger.Epoch(); e > 0 {
		m.log.Info("this ledger was restored from a backup; its events carry the epoch in their node id",
			"epoch", e, "restored_at", m.ledger.RestoredAt(), "node_id", m.ledger.NodeID())
	}
}

// warnUnfinishedRestore says so when a killed restore left its staged
// copy beside the ledger: meter.db is then still the ledger from before
// that restore, which an operator may not expect.
func (m *Main) warnUnfinishedRestore() {
	entries, err := os.ReadDir(m.Config.DataDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ledger.FileName+".restore-") {
			m.log.Warn("a restore did not finish: meter.db is the ledger from before it; run meterd restore again to install the backup (it removes the leftover)",
				"leftover", filepath.Join(m.Config.DataDir, e.Name()))
			return
		}
	}
}

// noteDataDir records which of the data directory, the ledger file and the
// admin token exist before start-up, and returns a function that removes
// whichever of them start-up created: a start that fails before serving
// leaves the disk as it found it. Nothing that existed is ever removed.
func (c *Config) noteDataDir() (undo func()) {
	dir := c.DataDir
	paths := []string{filepath.Join(dir, ledger.FileName), filepath.Join(dir, adminTokenFile), filepath.Join(dir, "portal.key")}
	var fresh []string
	for _, p := range paths {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			fresh = append(fresh, p)
		}
	}
	_, err := os.Lstat(dir)
	dirFresh := errors.Is(err, fs.ErrNotExist)
	return func() {
		for _, p := range fresh {
			os.Remove(p)
		}
		if dirFresh {
			os.Remove(dir) // only if empty: never a directory someone filled meanwhile
		}
	}
}

// adminTokenFile is where serve keeps a generated admin token, and where
// the CLI finds it.
const adminTokenFile = "admin.token"

// secretEnv lists the environment variables holding secrets. Each may
// instead be given as NAME_FILE, the path of a file holding the value
// (Docker and systemd credentials); the variable itself wins if both are
// set.
var secretEnv = []string{"METER_ADMIN_TOKEN", "METER_SERVICE_TOKEN", "METER_CRON_SECRET",
	"STRIPE_SECRET_KEY", "METER_DATABASE_URL"}

// loadSecretFiles sets each secret variable from its NAME_FILE.
func loadSecretFiles() error {
	for _, name := range secretEnv {
		path, ok := os.LookupEnv(name + "_FILE")
		if !ok || path == "" {
			continue
		}
		if _, set := os.LookupEnv(name); set {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("%s_FILE: %w", name, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return fmt.Errorf("%s_FILE: %s is empty", name, path)
		}
		os.Setenv(name, v)
	}
	return nil
}
