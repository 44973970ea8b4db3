package auth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-sh/vigil/config"
)

// KV is the durable key-value space the Directory keeps runtime users and
// roles in. notifier.KV satisfies it; auth declares its own so that it does
// not depend on the notifier.
type KV interface {
	Get(key string) ([]byte, bool, error)
	Put(key string, value []byte) error
	Delete(key string) error
	// List returns every key with the prefix and its value.
	List(prefix string) (map[string][]byte, error)
}

// Errors the Directory's lookups and changes wrap, for callers to tell apart
// with errors.Is: the web layer answers them 404, 409 and 400.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

// Where a user or role comes from.
const (
	SourceConfig  = "config"
	SourceRuntime = "runtime"
)

// Keys of the runtime entries in the Directory's KV.
const (
	userKeyPrefix = "user/"
	roleKeyPrefix = "role/"
)

// tokenSum is the SHA-256 of a token, as parseHash returns it.
type tokenSum = [sha256.Size]byte

// maxDescription bounds a runtime role's description.
const maxDescription = 1024

// validName is what a runtime user or role may be called: short, and safe in
// a URL path and a log line.
var validName = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)

// UserInfo is what the Directory tells of a user. It never holds a token
// hash, only how many the user has.
type UserInfo struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
	// Tokens is how many tokens the user has in force.
	Tokens int    `json:"tokens"`
	Source string `json:"source"`
	// Permissions are every permission the user holds, those its roles
	// imply included (config.Implied).
	Permissions []string `json:"permissions"`
	// Resources holds, for a permission the user holds for some apps
	// only, those apps.
	Resources map[string][]string `json:"resources,omitempty"`
	Created   time.Time           `json:"created,omitzero"`
	CreatedBy string              `json:"created_by,omitempty"`
	Updated   time.Time           `json:"updated,omitzero"`
	UpdatedBy string              `json:"updated_by,omitempty"`
}

// RoleInfo is what the Directory tells of a role.
type RoleInfo struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Permissions []string  `json:"permissions"`
	Source      string    `json:"source"`
	Created     time.Time `json:"created,omitzero"`
	CreatedBy   string    `json:"created_by,omitempty"`
	Updated     time.Time `json:"updated,omitzero"`
	UpdatedBy   string    `json:"updated_by,omitempty"`
}

// UserSpec is a runtime user as a caller writes it. Tokens are hashes in the
// configuration's format ("sha256:<hex>", from `vigil token new`), never
// tokens.
type UserSpec struct {
	Name   string
	Roles  []string
	Tokens []string
}

// RoleSpec is a runtime role as a caller writes it.
type RoleSpec struct {
	Name        string
	Description string
	Permissions []string
}

// runtimeUser is a user as the KV keeps it, in JSON.
type runtimeUser struct {
	Name      string    `json:"name"`
	Roles     []string  `json:"roles"`
	Tokens    []string  `json:"tokens"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
	Updated   time.Time `json:"updated"`
	UpdatedBy string    `json:"updated_by"`
}

// runtimeRole is a role as the KV keeps it, in JSON.
type runtimeRole struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Permissions []string  `json:"permissions"`
	Created     time.Time `json:"created"`
	CreatedBy   string    `json:"created_by"`
	Updated     time.Time `json:"updated"`
	UpdatedBy   string    `json:"updated_by"`
}

// runtimeSet is every runtime entry, in force or not. Changes work on a
// copy, so a refused change leaves nothing behind.
type runtimeSet struct {
	users map[string]runtimeUser
	roles map[string]runtimeRole
}

func (s runtimeSet) clone() runtimeSet {
	return runtimeSet{users: maps.Clone(s.users), roles: maps.Clone(s.roles)}
}

// Directory holds the configuration in force and the users and roles added
// at runtime, and builds the Authenticator of both. The configuration is the
// seed and wins: its users and roles cannot be changed through the
// Directory, and a runtime entry whose name the configuration takes is
// ignored. Runtime entries live in a KV as JSON under "user/<name>" and
// "role/<name>".
type Directory struct {
	kv     KV
	logger *slog.Logger
	now    func() time.Time
	// sleep waits on another gateway's claim (generation.go).
	sleep func(time.Duration)

	// mu serialises changes and guards what follows.
	mu      sync.RWMutex
	applied bool
	cfg     *config.Config
	set     runtimeSet
	res     resolved

	// seen is the generation (genKey's value, found when loaded) the
	// entries were loaded at; gen is it parsed, for a change under way.
	seen   []byte
	loaded bool
	gen    generation
	// checked is when refresh last read the generation, in Unix
	// nanoseconds.
	checked atomic.Int64

	auth atomic.Pointer[Authenticator]
}

// NewDirectory loads the runtime users and roles from kv, and reloads them
// when another gateway sharing kv changes them (generation.go). Its Authenticator
// is nil, and it refuses changes, until ApplyConfig has run once. An entry
// that cannot be decoded is logged and left out, so that vigil still starts
// with its configured users; it then grants nothing.
func NewDirectory(kv KV, logger *slog.Logger) (*Directory, error) {
	if kv == nil {
		return nil, errors.New("auth: directory needs a KV")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Directory{
		kv:     kv,
		logger: logger,
		now:    time.Now,
		sleep:  time.Sleep,
		cfg:    &config.Config{},
		set:    runtimeSet{users: map[string]runtimeUser{}, roles: map[string]runtimeRole{}},
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.sync(); err != nil {
		return nil, err
	}
	d.checked.Store(d.now().UnixNano())
	return d, nil
}

// SetClock makes now the Directory's clock: the times its changes record,
// the expiry of its claims, and when it next reads the generation. It is
// for tests; call it before the Directory is used.
func (d *Directory) SetClock(now func() time.Time) {
	d.now = now
	d.checked.Store(now().UnixNano())
}

// Authenticator returns the authenticator of the configuration and the
// runtime entries in force, or nil before the first ApplyConfig. It is built
// once per change, so this costs a load, and every RefreshInterval a read
// of the generation, so that a change on another gateway sharing the store
// is seen here.
func (d *Directory) Authenticator() *Authenticator {
	d.refresh()
	return d.auth.Load()
}

// ApplyConfig makes cfg the configuration in force. It builds the new
// authenticator first and, when cfg's users are bad (the errors of New),
// fails and changes nothing. Runtime entries that cfg now shadows or breaks
// are logged once here and left out.
func (d *Directory) ApplyConfig(cfg *config.Config) error {
	if cfg == nil {
		return errors.New("auth: nil config")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	res := resolve(cfg, d.set)
	a, err := build(cfg, res)
	if err != nil {
		return err
	}
	d.cfg, d.res, d.applied = cfg, res, true
	d.auth.Store(a)
	for _, w := range res.warnings {
		d.logger.Warn("Runtime user or role left out", "reason", w)
	}
	return nil
}

// Users lists every user in force, configured and runtime, by name.
func (d *Directory) Users() []UserInfo {
	d.refresh()
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]UserInfo, 0, len(d.cfg.Users)+len(d.res.users))
	for _, uc := range d.cfg.Users {
		out = append(out, configUserInfo(d.cfg, uc))
	}
	for _, ru := range d.res.users {
		out = append(out, ru.info())
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// User returns the user in force called name.
func (d *Directory) User(name string) (UserInfo, error) {
	for _, u := range d.Users() {
		if u.Name == name {
			return u, nil
		}
	}
	return UserInfo{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
}

// Roles lists every role in force, configured and runtime, by name.
func (d *Directory) Roles() []RoleInfo {
	d.refresh()
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []RoleInfo
	for _, name := range d.cfg.RoleNames() {
		out = append(out, RoleInfo{
			Name:        name,
			Description: d.cfg.Roles[name].Description,
			Permissions: nonNil(d.cfg.PermissionsOf(name)),
			Source:      SourceConfig,
		})
	}
	for name, perms := range d.res.roles {
		r := d.set.roles[name]
		out = append(out, RoleInfo{
			Name:        name,
			Description: r.Description,
			Permissions: nonNil(perms),
			Source:      SourceRuntime,
			Created:     r.Created,
			CreatedBy:   r.CreatedBy,
			Updated:     r.Updated,
			UpdatedBy:   r.UpdatedBy,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if out == nil {
		out = []RoleInfo{}
	}
	return out
}

// Role returns the role in force called name.
func (d *Directory) Role(name string) (RoleInfo, error) {
	for _, r := range d.Roles() {
		if r.Name == name {
			return r, nil
		}
	}
	return RoleInfo{}, fmt.Errorf("role %q: %w", name, ErrNotFound)
}

func (d *Directory) runtimeUserInfo(name string) (UserInfo, error) {
	for _, ru := range d.res.users {
		if ru.rec.Name == name {
			return ru.info(), nil
		}
	}
	return UserInfo{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
}

func runtimeRoleInfo(r runtimeRole) RoleInfo {
	return RoleInfo{
		Name:        r.Name,
		Description: r.Description,
		Permissions: nonNil(slices.Clone(r.Permissions)),
		Source:      SourceRuntime,
		Created:     r.Created,
		CreatedBy:   r.CreatedBy,
		Updated:     r.Updated,
		UpdatedBy:   r.UpdatedBy,
	}
}

// directoryError is an error of the Directory whose message is for the
// caller as it is, and whose kind is one of ErrNotFound, ErrConflict,
// ErrInvalid.
type directoryError struct {
	kind error
	msg  string
}

func (e *directoryError) Error() string { return e.msg }
func (e *directoryError) Unwrap() error { return e.kind }

func invalidf(format string, args ...any) error {
	return &directoryError{kind: ErrInvalid, msg: fmt.Sprintf(format, args...)}
}

func conflictf(format string, args ...any) error {
	return &directoryError{kind: ErrConflict, msg: fmt.Sprintf(format, args...)}
}

func configConflict(kind, name string) error {
	return conflictf("%s %q is defined in the config file and cannot be changed here: edit the config file and reload", kind, name)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
