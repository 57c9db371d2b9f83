package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/meterd/meterd/ledger"
)

// noteDataDir records which of the data directory, the ledger file and the
// admin token exist before start-up, and returns a function that removes
// whichever of them start-up created: a start that fails before serving
// leaves the disk as it found it. Nothing that existed is ever removed.
func (c *Config) noteDataDir() (undo func()) {
	dir := c.DataDir
	paths := []string{filepath.Join(dir, ledger.FileName), filepath.Join(dir, adminTokenFile)}
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
