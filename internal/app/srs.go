package app

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/envelope"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/srs"
)

// srsSecretPath is where the SRS secret lives: one secret a line, the first signs, every one
// verifies (the format of postsrsd's secret file, so that both can share it).
func srsSecretPath(data string) string { return filepath.Join(data, "srs.secret") }

// srsKeeper gives the server's SRS, reading the secret on first use and making it when a
// forward needs one (a reverse without a secret has nothing to verify against).
type srsKeeper struct {
	path    string
	domain  string
	maxAge  int
	isLocal func(domain string) bool
	now     func() time.Time

	mu  sync.Mutex
	srs *srs.SRS
}

var _ policy.SRSReverser = (*srsKeeper)(nil)

func newSRSKeeper(cfg config.Config, data string, isLocal func(string) bool) *srsKeeper {
	domain := cmp.Or(cfg.Addresses.SRSDomain, cfg.Domains[0])
	return &srsKeeper{path: srsSecretPath(data), domain: domain, maxAge: cfg.Addresses.SRSMaxAge, isLocal: isLocal, now: time.Now}
}

// get returns the SRS, reading the secret, or making it when create is set; nil without a
// secret (and create unset).
func (k *srsKeeper) get(create bool) (*srs.SRS, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.srs != nil {
		return k.srs, nil
	}
	s, err := k.read(k.domain, k.maxAge, create)
	if s != nil {
		k.srs = s
	}
	return s, err
}

// set gives the keeper cfg's SRS domain and maximum age, and reads the secret file again (a
// reload): a new first line signs from now on, and the lines after it still verify, so that
// the addresses made with an old secret keep working while it is listed. When the file cannot
// be read, or holds no valid secret, everything stays as it was and the error says why.
func (k *srsKeeper) set(cfg config.Config) error {
	domain := cmp.Or(cfg.Addresses.SRSDomain, cfg.Domains[0])
	k.mu.Lock()
	defer k.mu.Unlock()
	s, err := k.read(domain, cfg.Addresses.SRSMaxAge, false)
	if err != nil {
		return err
	}
	k.domain, k.maxAge, k.srs = domain, cfg.Addresses.SRSMaxAge, s // nil without a file: made at the first forward
	return nil
}

// read makes the SRS of the secret file with domain and maxAge, making the file when create is
// set; nil without a file (and create unset).
func (k *srsKeeper) read(domain string, maxAge int, create bool) (*srs.SRS, error) {
	b, err := os.ReadFile(k.path)
	if errors.Is(err, fs.ErrNotExist) && create {
		b, err = makeSRSSecret(k.path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("SRS secret: %w", err)
	}
	var secrets [][]byte
	for line := range bytes.Lines(b) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			secrets = append(secrets, line)
		}
	}
	s, err := srs.New(srs.Options{Secrets: secrets, Domain: domain, MaxAge: maxAge, Now: k.now})
	if err != nil {
		return nil, fmt.Errorf("SRS secret %s: %w", k.path, err)
	}
	return s, nil
}

// makeSRSSecret writes a new random secret to path (mode 0600), unless another process made
// one first, and returns the file's contents.
func makeSRSSecret(path string) ([]byte, error) {
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	secret := []byte(base64.RawStdEncoding.EncodeToString(raw) + "\n")
	tmp, err := os.CreateTemp(filepath.Dir(path), ".srs.secret-*")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // linked under its name below, or not needed
	// CreateTemp makes it 0600 already; the write, sync and link make it whole or absent.
	_, err = tmp.Write(secret)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return os.ReadFile(path) // another process made it first: use theirs
	} else if err != nil {
		return nil, err
	}
	if err := safeio.SyncDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	return secret, nil
}

// Reverse implements policy.SRSReverser.
func (k *srsKeeper) Reverse(addr string) (string, bool, error) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !srs.IsSRS(addr[:at]) {
		return "", false, nil
	}
	s, err := k.get(false)
	if err != nil {
		return "", true, err
	}
	if s == nil {
		return "", true, fmt.Errorf("%w (this server has no SRS secret yet)", srs.ErrBadHash)
	}
	orig, err := s.Reverse(addr)
	return orig, true, err
}

// forward rewrites the sender of forwarded mail for remote delivery (delivery.Router.Forward):
// mail that came in unauthenticated and leaves again can only have come through an alias, and
// its sender's SPF would fail from here. The null sender, and a sender in a local domain
// (whose SPF allows this server), stay as they are, as postsrsd's exclusions do.
func (k *srsKeeper) forward(env *envelope.Envelope) (*envelope.Envelope, error) {
	if env.From == "" || env.AuthUser != "" || k.isLocal(envelope.Domain(env.From)) {
		return env, nil
	}
	s, err := k.get(true)
	if err != nil {
		return nil, err
	}
	from, err := s.Forward(env.From)
	if err != nil {
		return nil, err
	}
	fenv := *env // only From changes: the recipients are shared, read-only
	fenv.From = from
	return &fenv, nil
}
