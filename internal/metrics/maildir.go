package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tern-mail/tern/internal/delivery/maildir"
)

// maildirCollector reads the Maildir deliverer's counts at each scrape.
type maildirCollector struct {
	stats atomic.Pointer[func() maildir.Stats]
}

var (
	maildirSyncedDesc = prometheus.NewDesc(namespace+"_maildir_files_synced_total",
		"Maildir files made durable before going into new/, by way: fsync (each its own) or syncfs (with the other files of a batch).",
		[]string{"way"}, nil)
	maildirSyncFSDesc = prometheus.NewDesc(namespace+"_maildir_syncfs_total",
		"syncfs calls that made the files of a Maildir delivery batch durable.", nil, nil)
)

// Maildir has the Maildir metrics read from stats at each scrape. Until it is called they
// are not exported.
func (m *Metrics) Maildir(stats func() maildir.Stats) { m.maildirCollector.stats.Store(&stats) }

func (c *maildirCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- maildirSyncedDesc
	ch <- maildirSyncFSDesc
}

func (c *maildirCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.stats.Load()
	if f == nil {
		return
	}
	st := (*f)()
	ch <- prometheus.MustNewConstMetric(maildirSyncedDesc, prometheus.CounterValue, float64(st.Fsynced), "fsync")
	ch <- prometheus.MustNewConstMetric(maildirSyncedDesc, prometheus.CounterValue, float64(st.BySyncFS), "syncfs")
	ch <- prometheus.MustNewConstMetric(maildirSyncFSDesc, prometheus.CounterValue, float64(st.SyncFS))
}
