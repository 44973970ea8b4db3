// Package pgtest starts throwaway PostgreSQL clusters for tests that must
// stop and restart their server or change its settings. It uses Debian's
// server binaries (/usr/lib/postgresql/*/bin); as root it runs them as the
// postgres user, since PostgreSQL refuses to run as root.
package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BinGlob is where the server binaries are looked for; the newest version wins.
const BinGlob = "/usr/lib/postgresql/*/bin"

// Hint says how to get the binaries when they are missing.
const Hint = "install Debian's PostgreSQL server (apt-get install -y postgresql), " +
	"or run scripts/pg-ensure.sh, which does so"

// Cluster is a running throwaway cluster listening on 127.0.0.1 only, with
// trust authentication for the postgres user. It is stopped and removed
// when the test ends.
type Cluster struct {
	t        testing.TB
	bin      string
	dir      string // owned by the cluster's user; holds data/, the socket and the log
	port     int
	settings []string
	asUser   string // "" when the test does not run as root
}

// Option changes how a cluster is started.
type Option func(*Cluster)

// WithSetting passes -c name=value to the server.
func WithSetting(name, value string) Option {
	return func(c *Cluster) { c.settings = append(c.settings, name+"="+value) }
}

// WithPreload loads libraries at server start (shared_preload_libraries),
// e.g. "pg_stat_statements".
func WithPreload(libs ...string) Option {
	return WithSetting("shared_preload_libraries", strings.Join(libs, ","))
}

// WithArchive turns WAL archiving on (wal_level=replica, archive_mode=on).
// The archive_command is not set on the command line, where it would win
// over ALTER SYSTEM: set it with SetArchiveCommand.
func WithArchive() Option {
	return func(c *Cluster) {
		c.settings = append(c.settings, "wal_level=replica", "archive_mode=on")
	}
}

// CopyArchiveCommand is an archive_command that copies each WAL file into
// dir (see ArchiveDir).
func CopyArchiveCommand(dir string) string { return fmt.Sprintf("cp %%p %s/%%f", dir) }

// ArchiveDir returns a new temporary directory the server's user may
// write WAL files into, removed when the test ends.
func ArchiveDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vigil-pgtest-archive-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// The server runs as its own user when the test is root.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dir
}

// WithPort listens on port instead of a free one.
func WithPort(port int) Option {
	return func(c *Cluster) { c.port = port }
}

// StartCluster creates a cluster in a new temporary directory, starts it
// and registers its removal with t.Cleanup. It fails the test, saying how
// to install them, when the server binaries are missing.
func StartCluster(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	bin, err := FindBin()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	c := &Cluster{t: t, bin: bin}
	for _, o := range opts {
		o(c)
	}
	if os.Geteuid() == 0 {
		c.asUser = "postgres"
	}
	c.dir, err = os.MkdirTemp("", "vigil-pgtest-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(c.remove)
	if c.asUser != "" {
		u, err := user.Lookup(c.asUser)
		if err != nil {
			t.Fatalf("pgtest: running as root needs the %s user to run the server: %v (%s)", c.asUser, err, Hint)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	if out, err := c.run("initdb", "-D", c.dataDir(), "-A", "trust", "-U", "postgres",
		"-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	// A free port can be taken between the probe and the server's bind, by
	// another test package starting its own cluster: try a few.
	fixed := c.port != 0
	for attempt := 1; ; attempt++ {
		if !fixed {
			c.port = freePort(t)
		}
		err = c.start()
		if err == nil {
			return c
		}
		if fixed || attempt == 3 {
			t.Fatalf("pgtest: %v", err)
		}
	}
}

// StartReplica starts a streaming replica of c (which needs wal_level
// replica, e.g. WithArchive) from a base backup, in a new temporary
// directory on a free port; it is stopped and removed when the test ends.
func (c *Cluster) StartReplica(t testing.TB) *Cluster {
	t.Helper()
	r := &Cluster{t: t, bin: c.bin, asUser: c.asUser}
	var err error
	r.dir, err = os.MkdirTemp("", "vigil-pgtest-replica-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(r.remove)
	if r.asUser != "" {
		u, err := user.Lookup(r.asUser)
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(r.dir, uid, gid); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	if out, err := r.run("pg_basebackup", "-D", r.dataDir(), "-R", "-X", "stream", "-c", "fast",
		"-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-U", "postgres"); err != nil {
		t.Fatalf("pgtest: pg_basebackup: %v\n%s", err, out)
	}
	for attempt := 1; ; attempt++ {
		r.port = freePort(t)
		if err = r.start(); err == nil {
			return r
		}
		if attempt == 3 {
			t.Fatalf("pgtest: %v", err)
		}
	}
}

// FindBin returns the newest PostgreSQL server binary directory.
func FindBin() (string, error) {
	dirs, _ := filepath.Glob(BinGlob)
	var found []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			found = append(found, d)
		}
	}
	if len(found) == 0 {
		return "", fmt.Errorf("no PostgreSQL server binaries in %s: %s", BinGlob, Hint)
	}
	sort.Slice(found, func(i, j int) bool { return version(found[i]) < version(found[j]) })
	return found[len(found)-1], nil
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// DSN returns a URL for the postgres database as the postgres user.
func (c *Cluster) DSN() string { return c.DSNFor("postgres") }

// DSNFor returns a URL for database db as the postgres user.
func (c *Cluster) DSNFor(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// Port returns the port the cluster listens on.
func (c *Cluster) Port() int { return c.port }

// Address returns the cluster's host:port.
func (c *Cluster) Address() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

// Version returns the server's major version, from the binaries' path.
func (c *Cluster) Version() int { return version(c.bin) }

// Stop stops the server (pg_ctl stop -m fast: clients are disconnected).
// Call it from the test's goroutine: it fails the test on error.
func (c *Cluster) Stop() {
	c.t.Helper()
	if out, err := c.run("pg_ctl", "-D", c.dataDir(), "-m", "fast", "-w", "stop"); err != nil {
		c.t.Fatalf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
}

// Start starts the stopped server again, on the same port and settings.
// Call it from the test's goroutine: it fails the test on error.
func (c *Cluster) Start() {
	c.t.Helper()
	if err := c.start(); err != nil {
		c.t.Fatalf("pgtest: %v", err)
	}
}

func (c *Cluster) start() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off", c.port, c.dir)
	for _, s := range c.settings {
		opts += " -c " + s
	}
	logFile := filepath.Join(c.dir, "server.log")
	out, err := c.run("pg_ctl", "-D", c.dataDir(), "-o", opts, "-l", logFile, "-w", "-t", "30", "start")
	if err != nil {
		log, _ := os.ReadFile(logFile)
		return fmt.Errorf("pg_ctl start on port %d: %w\n%s\nserver log:\n%s", c.port, err, out, tail(log, 2000))
	}
	return nil
}

// remove stops the server, if running, at once and deletes its files.
func (c *Cluster) remove() {
	if _, err := os.Stat(filepath.Join(c.dataDir(), "postmaster.pid")); err == nil {
		_, _ = c.run("pg_ctl", "-D", c.dataDir(), "-m", "immediate", "-w", "stop") // best effort: the directory goes next
	}
	_ = os.RemoveAll(c.dir) // a leftover temp directory is not worth failing a test for
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

// run runs a server binary, as the postgres user when the test is root,
// with a bound on its time so a hung server cannot hang the test.
func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
