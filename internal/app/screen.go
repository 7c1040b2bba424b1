package app

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/tern-mail/tern/internal/config"
	"github.com/tern-mail/tern/internal/dnsbl"
	"github.com/tern-mail/tern/internal/policy"
	"github.com/tern-mail/tern/internal/resolver"
	"github.com/tern-mail/tern/internal/safeio"
	"github.com/tern-mail/tern/internal/smtpserver"
)

// greylistPath is where the greylist is kept across restarts.
func greylistPath(data string) string { return filepath.Join(data, "greylist.json") }

// screenOptions builds the checks of the smtp listener before DATA (screen.*): the DNS lists
// and reverse lookups over a resolver of their own on delivery.resolver (answers cached for
// their TTL), the greylist in memory, loaded from the data directory; save writes it back (at
// shutdown). Nothing is built for what is off. refused (nil: none) is told the check of each
// recipient refused.
func screenOptions(cfg config.Config, data string, refused func(string), log *slog.Logger) (o smtpserver.ScreenOptions, save func(), err error) {
	save = func() {}
	sc := cfg.Screen
	o = smtpserver.ScreenOptions{PregreetWait: sc.PregreetWait.Duration}
	p := &policy.Screen{
		Threshold:           sc.DNSBLThreshold,
		AllowThreshold:      sc.DNSBLAllowlistThreshold,
		RejectUnknownClient: sc.RejectUnknownClient,
		Logger:              log,
		Refused:             refused,
	}
	sites, err := dnsblSites(sc)
	if err != nil {
		return o, save, err
	}
	var r *resolver.Resolver
	if len(sites) > 0 || sc.ReverseDNS || sc.RejectUnknownClient {
		c, err := resolver.NewClient(cfg.Delivery.Resolver, inboundQueryTimeout)
		if err != nil {
			return o, save, fmt.Errorf("screen: %w", err)
		}
		r = resolver.New(c, resolver.Options{})
	}
	if len(sites) > 0 {
		p.Lists = &dnsbl.Lists{Sites: sites, Resolver: r}
	}
	if sc.ReverseDNS || sc.RejectUnknownClient {
		p.Resolver = r
	}
	if p.Exempt, err = sc.ExemptPrefixes(); err != nil {
		return o, save, err
	}
	if sc.Greylist {
		p.Greylist = policy.NewGreylist(policy.GreylistOptions{
			Delay:       sc.GreylistDelay.Duration,
			RetryWindow: sc.GreylistRetryWindow.Duration,
			Expire:      sc.GreylistExpire.Duration,
			MaxEntries:  sc.GreylistMaxEntries,
		})
		loadGreylist(p.Greylist, greylistPath(data), log)
		save = func() { saveGreylist(p.Greylist, greylistPath(data), log) }
	}
	if p.Active() {
		o.Screener = p
	}
	return o, save, nil
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
