package app

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/dnsbl"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/resolver"
	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/smtpserver"
)

// greylistPath is where the greylist is kept across restarts.
func greylistPath(data string) string { return filepath.Join(data, "greylist.json") }

// screening builds the checks of the smtp listener before DATA (screen.*) from a
// configuration: at start, and again on each reload (for the sessions that start from then on).
// The DNS lists and reverse lookups go through a resolver of their own on delivery.resolver
// (answers cached for their TTL), made anew each time. The greylist is one for the server's
// life: loaded from the data directory when it is first turned on, given the new delays by a
// reload (its triplets stay), kept when a reload turns it off (so that turning it on again
// forgets no sender), and saved at shutdown. Nothing is built for what is off.
type screening struct {
	data    string
	refused func(string) // told the check of each recipient refused; nil: none
	log     *slog.Logger
	now     func() time.Time // the greylist's clock; nil: time.Now

	mu   sync.Mutex
	grey *policy.Greylist // nil until screen.greylist is first on
}

func newScreening(data string, refused func(string), log *slog.Logger) *screening {
	return &screening{data: data, refused: refused, log: log}
}

// options are the screening options of cfg.
func (sc *screening) options(cfg config.Config) (o smtpserver.ScreenOptions, err error) {
	c := cfg.Screen
	o = smtpserver.ScreenOptions{PregreetWait: c.PregreetWait.Duration}
	p := &policy.Screen{
		Threshold:           c.DNSBLThreshold,
		AllowThreshold:      c.DNSBLAllowlistThreshold,
		RejectUnknownClient: c.RejectUnknownClient,
		Logger:              sc.log,
		Refused:             sc.refused,
	}
	sites, err := dnsblSites(c)
	if err != nil {
		return o, err
	}
	var r *resolver.Resolver
	if len(sites) > 0 || c.ReverseDNS || c.RejectUnknownClient {
		cl, err := resolver.NewClient(cfg.Delivery.Resolver, inboundQueryTimeout)
		if err != nil {
			return o, fmt.Errorf("screen: %w", err)
		}
		r = resolver.New(cl, resolver.Options{})
	}
	if len(sites) > 0 {
		p.Lists = &dnsbl.Lists{Sites: sites, Resolver: r}
	}
	if c.ReverseDNS || c.RejectUnknownClient {
		p.Resolver = r
	}
	if p.Exempt, err = c.ExemptPrefixes(); err != nil {
		return o, err
	}
	if c.Greylist {
		p.Greylist = sc.greylist(policy.GreylistOptions{
			Delay:       c.GreylistDelay.Duration,
			RetryWindow: c.GreylistRetryWindow.Duration,
			Expire:      c.GreylistExpire.Duration,
			MaxEntries:  c.GreylistMaxEntries,
			Now:         sc.now,
		})
	}
	if p.Active() {
		o.Screener = p
	}
	return o, nil
}

// greylist is the server's greylist with the options o: made and loaded the first time, given o
// after.
func (sc *screening) greylist(o policy.GreylistOptions) *policy.Greylist {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.grey != nil {
		sc.grey.SetOptions(o)
		return sc.grey
	}
	sc.grey = policy.NewGreylist(o)
	loadGreylist(sc.grey, greylistPath(sc.data), sc.log)
	return sc.grey
}

// save writes the greylist to the data directory (at shutdown, after the sessions ended), if
// there is one.
func (sc *screening) save() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.grey != nil {
		saveGreylist(sc.grey, greylistPath(sc.data), sc.log)
	}
}

// loadGreylist adds the triplets saved at the last shutdown. A missing file is a first start;
// a damaged one costs senders a delay, not the start.
func loadGreylist(g *policy.Greylist, path string, log *slog.Logger) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		log.Warn("greylist not loaded", "path", path, "err", err)
		return
	}
	defer func() { _ = f.Close() }() // read only
	n, err := g.Load(f)
	if err != nil {
		log.Warn("greylist partly loaded", "path", path, "triplets", n, "err", err)
		return
	}
	log.Info("greylist loaded", "triplets", n)
}

// saveGreylist replaces the saved greylist with g's triplets: a new file, synced, renamed over
// the old one, so that a crash leaves one or the other.
func saveGreylist(g *policy.Greylist, path string, log *slog.Logger) {
	tmp := path + ".tmp"
	err := func() error {
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		err = g.Save(f)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err == nil {
			err = safeio.SyncDir(filepath.Dir(path))
		}
		return err
	}()
	if err != nil {
		_ = os.Remove(tmp) // best effort: the error is what matters
		log.Warn("greylist not saved: senders will be delayed again", "path", path, "err", err)
		return
	}
	log.Info("greylist saved", "triplets", g.Len())
}

// dnsblSites parses screen.dnsbl_sites (tern config check runs it too, in preflight).
func dnsblSites(sc config.Screen) ([]dnsbl.Site, error) {
	var sites []dnsbl.Site
	for _, text := range sc.DNSBLSites {
		site, err := dnsbl.ParseSite(text)
		if err != nil {
			return nil, fmt.Errorf("screen.dnsbl_sites: %w", err)
		}
		sites = append(sites, site)
	}
	return sites, nil
}
