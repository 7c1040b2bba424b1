package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tern-mail/tern/internal/queue"
)

// queueCollector reads the queue's summary at each scrape: the queue keeps its counts as
// messages come and go (queue.Stats walks nothing in the usual case), and the figures are never
// stale.
type queueCollector struct {
	stats atomic.Pointer[func() queue.Stats]
	now   func() time.Time
}

var (
	queueMessagesDesc = prometheus.NewDesc(namespace+"_queue_messages", "Messages in the queue.", nil, nil)
	queueHeldDesc     = prometheus.NewDesc(namespace+"_queue_held_messages", "Messages in the queue held by an administrator.", nil, nil)
	queueOldestDesc   = prometheus.NewDesc(namespace+"_queue_oldest_message_age_seconds",
		"Age of the oldest message in the queue (0 when it is empty).", nil, nil)
)

// Queue has the queue metrics read from stats at each scrape. Until it is called they are
// not exported.
func (m *Metrics) Queue(stats func() queue.Stats) { m.queueCollector.stats.Store(&stats) }

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueMessagesDesc
	ch <- queueHeldDesc
	ch <- queueOldestDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.stats.Load()
	if f == nil {
		return
	}
	st := (*f)()
	var age float64
	if !st.Oldest.IsZero() {
		now := time.Now
		if c.now != nil {
			now = c.now
		}
		age = max(now().Sub(st.Oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(queueMessagesDesc, prometheus.GaugeValue, float64(st.Messages))
	ch <- prometheus.MustNewConstMetric(queueHeldDesc, prometheus.GaugeValue, float64(st.Held))
	ch <- prometheus.MustNewConstMetric(queueOldestDesc, prometheus.GaugeValue, age)
}
