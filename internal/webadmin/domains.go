package webadmin

import (
	"context"
	"net/http"
	"slices"
	"time"
)

// Domains tells the domains page about the local domains: their DKIM keys, and the DNS records
// each must publish, as tern dkim list and tern dns records [--check] print them.
type Domains interface {
	// List returns the local domains.
	List() []string
	// DKIMKeys returns every DKIM key, without its private part.
	DKIMKeys(ctx context.Context) ([]DKIMKey, error)
	// Records returns the records domain must publish, in zone-file syntax; with check, how DNS
	// serves them instead, and ok false when one is missing, differs or could not be looked up.
	Records(ctx context.Context, domain string, check bool) (text string, ok bool, err error)
}

// DKIMKey is a DKIM key as the domains page lists it.
type DKIMKey struct {
	Domain, Selector, Algorithm, State string
	Created                            time.Time
}

// domainRow is a local domain with its keys.
type domainRow struct {
	Name string
	Keys []DKIMKey
}

// recordsData is the records page's.
type recordsData struct {
	Domain string
	Check  bool
	OK     bool
	Text   string
}

func (h *Handler) routeDomains() {
	h.mux.HandleFunc("GET /domains", h.authed(h.domainsPage))
	h.mux.HandleFunc("GET /domains/records", h.authed(h.recordsPage))
}

// domainsPage lists the local domains and their DKIM keys.
func (h *Handler) domainsPage(w http.ResponseWriter, r *http.Request, s session, _ string) {
	var rows []domainRow
	p := pageFor(s, "Domains", "domains", &rows)
	keys, err := h.opts.Domains.DKIMKeys(r.Context())
	if err != nil {
		p.Error = err.Error()
	}
	for _, d := range h.opts.Domains.List() {
		row := domainRow{Name: d}
		for _, k := range keys {
			if k.Domain == d {
				row.Keys = append(row.Keys, k)
			}
		}
		rows = append(rows, row)
	}
	h.render(w, http.StatusOK, "domains", p)
}

// recordsPage shows the records a domain must publish, or with check=1 what DNS says of them.
func (h *Handler) recordsPage(w http.ResponseWriter, r *http.Request, s session, _ string) {
	domain, check := r.URL.Query().Get("domain"), r.URL.Query().Get("check") == "1"
	d := recordsData{Domain: domain, Check: check}
	p := pageFor(s, "DNS records of "+domain, "domains", &d)
	if !slices.Contains(h.opts.Domains.List(), domain) {
		p.Error = domain + " is not a local domain"
		h.render(w, http.StatusNotFound, "records", p)
		return
	}
	var err error
	if d.Text, d.OK, err = h.opts.Domains.Records(r.Context(), domain, check); err != nil {
		p.Error = err.Error()
	}
	if check {
		h.log.Info("webadmin: dns check", "admin", s.admin, "remote", clientIP(r), "domain", domain, "ok", d.OK)
	}
	h.render(w, http.StatusOK, "records", p)
}
