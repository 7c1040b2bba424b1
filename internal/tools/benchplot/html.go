package benchplot

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"

	"github.com/tern-mail/tern/internal/tools/bench"
)

// HTML writes a page with the run's summary and two SVG charts: messages per second over
// time, and how many messages took how long (logarithmic time axis, p50/p90/p99 marked).
func HTML(w io.Writer, res *bench.Result, now time.Time) error {
	p := &page{}
	t := html.EscapeString(title(res))
	p.printf(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%s</title>
<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{padding:2px 10px;text-align:right}th{border-bottom:1px solid #888}td:first-child,th:first-child{text-align:left}
svg{display:block;margin:1em 0}h1{font-size:1.3em}</style></head><body>
<h1>%s</h1>
<p>%s; %.2f s from %s.</p>
`, t, t, html.EscapeString(fmt.Sprintf("%d messages sent, %d failed, %.1f messages/s, %.2f MB/s, %d connections (%d failed)",
		res.Messages, res.Failed, res.MessagesPerSec, res.MBPerSec, res.Connections, res.ConnectionErrors)),
		res.Elapsed, res.Started.UTC().Format(time.RFC3339))
	p.printf("<h2>Throughput</h2>\n%s\n", throughputSVG(res))
	p.printf("<h2>Message latency</h2>\n%s\n", latencySVG(res))
	p.printf("<h2>Latencies (ms)</h2>\n<table><tr><th></th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>\n")
	row := func(name string, s bench.Stats) {
		p.printf("<tr><td>%s</td><td>%d</td><td>%.3g</td><td>%.3g</td><td>%.3g</td><td>%.3g</td></tr>\n",
			html.EscapeString(name), s.Count, s.P50, s.P90, s.P99, s.Max)
	}
	row("message", res.Latency)
	for _, c := range res.Commands {
		row(c.Command, c.Stats)
	}
	p.printf("</table>\n<h2>Errors</h2>\n")
	if len(res.Errors) == 0 {
		p.printf("<p>None.</p>\n")
	} else {
		p.printf("<table><tr><th>kind</th><th>count</th><th>first</th></tr>\n")
		for _, e := range res.Errors {
			p.printf("<tr><td>%s</td><td>%d</td><td style=\"text-align:left\">%s</td></tr>\n",
				html.EscapeString(e.Kind), e.Count, html.EscapeString(e.Example))
		}
		p.printf("</table>\n")
	}
	p.printf("<p><small>Made by tern bench at %s.</small></p>\n</body></html>\n", now.UTC().Format(time.RFC3339))
	_, err := io.WriteString(w, p.String())
	return err
}

// page is the HTML being made, written out at once.
type page struct{ strings.Builder }

func (p *page) printf(format string, args ...any) { fmt.Fprintf(&p.Builder, format, args...) }

// Chart geometry, in SVG user units.
const (
	chartW, chartH                       = 760.0, 300.0
	padLeft, padRight, padTop, padBottom = 70.0, 20.0, 15.0, 45.0
)

// frame maps data to the plot area of one chart.
type frame struct {
	x0, x1, y0, y1 float64
	logX           bool
}

func (f frame) x(v float64) float64 {
	a, b := f.x0, f.x1
	if f.logX {
		v, a, b = math.Log10(v), math.Log10(a), math.Log10(b)
	}
	return padLeft + (v-a)/(b-a)*(chartW-padLeft-padRight)
}

func (f frame) y(v float64) float64 {
	return chartH - padBottom - (v-f.y0)/(f.y1-f.y0)*(chartH-padTop-padBottom)
}

// axes draws the frame, the ticks and the axis labels.
func (f frame) axes(b *strings.Builder, xLabel, yLabel string) {
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`+"\n",
		padLeft, padTop, chartW-padLeft-padRight, chartH-padTop-padBottom)
	var xt []float64
	if f.logX {
		xt = logTicks(f.x0, f.x1)
	} else {
		xt = linearTicks(f.x0, f.x1)
	}
	for _, v := range xt {
		x := f.x(v)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" font-size="11" text-anchor="middle">%s</text>`+"\n",
			x, padTop, x, chartH-padBottom, x, chartH-padBottom+15, tickText(v))
	}
	for _, v := range linearTicks(f.y0, f.y1) {
		y := f.y(v)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" font-size="11" text-anchor="end">%s</text>`+"\n",
			padLeft, y, chartW-padRight, y, padLeft-5, y+4, tickText(v))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="12" text-anchor="middle">%s</text>`+"\n",
		padLeft+(chartW-padLeft-padRight)/2, chartH-8, html.EscapeString(xLabel))
	fmt.Fprintf(b, `<text x="15" y="%.1f" font-size="12" text-anchor="middle" transform="rotate(-90 15 %.1f)">%s</text>`+"\n",
		padTop+(chartH-padTop-padBottom)/2, padTop+(chartH-padTop-padBottom)/2, html.EscapeString(yLabel))
}

func svgOpen(b *strings.Builder, label string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`+"\n",
		chartW, chartH, chartW, chartH, html.EscapeString(label))
}

// throughputSVG is messages per second in each interval of the run, as steps; intervals with
// failures are marked in red along the bottom.
func throughputSVG(res *bench.Result) string {
	var b strings.Builder
	svgOpen(&b, "messages per second over time")
	ymax := 1.0
	for _, pt := range res.Throughput {
		ymax = max(ymax, pt.Rate)
	}
	f := frame{x0: 0, x1: max(res.Elapsed, 1e-3), y0: 0, y1: niceCeil(ymax * 1.05)}
	f.axes(&b, "seconds from the start", "messages/s")
	if len(res.Throughput) > 0 {
		b.WriteString(`<path fill="none" stroke="#1565c0" stroke-width="1.5" d="`)
		prev := 0.0
		for i, pt := range res.Throughput {
			cmd := "L"
			if i == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&b, "%s%.1f,%.1f L%.1f,%.1f ", cmd, f.x(prev), f.y(pt.Rate), f.x(pt.T), f.y(pt.Rate))
			prev = pt.T
		}
		b.WriteString("\"/>\n")
		prev = 0
		for _, pt := range res.Throughput {
			if pt.Errors > 0 {
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="4" fill="#c62828"><title>%d errors</title></rect>`+"\n",
					f.x(prev), chartH-padBottom-4, max(f.x(pt.T)-f.x(prev), 1), pt.Errors)
			}
			prev = pt.T
		}
	}
	b.WriteString("</svg>")
	return b.String()
}

// latencySVG is the distribution of message latencies as bars on a logarithmic axis.
func latencySVG(res *bench.Result) string {
	var b strings.Builder
	svgOpen(&b, "distribution of message latencies")
	d := res.Distribution
	if len(d) == 0 {
		f := frame{x0: 0.1, x1: 1000, y0: 0, y1: 1, logX: true}
		f.axes(&b, "latency per message (ms), no message sent", "messages")
		b.WriteString("</svg>")
		return b.String()
	}
	var ymax uint64 = 1
	for _, bk := range d {
		ymax = max(ymax, bk.Count)
	}
	lo, hi := d[0].Lo, d[len(d)-1].Hi
	if hi <= lo*1.01 {
		lo, hi = lo/2, hi*2
	}
	f := frame{x0: lo, x1: hi, y0: 0, y1: niceCeil(float64(ymax) * 1.05), logX: true}
	f.axes(&b, "latency per message (ms, logarithmic)", "messages")
	for _, bk := range d {
		if bk.Count == 0 {
			continue
		}
		x0, x1 := f.x(max(bk.Lo, lo)), f.x(min(bk.Hi, hi))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#42a5f5" stroke="#1565c0" stroke-width="0.5"><title>%.3g-%.3g ms: %d</title></rect>`+"\n",
			x0, f.y(float64(bk.Count)), max(x1-x0, 1), f.y(0)-f.y(float64(bk.Count)), bk.Lo, bk.Hi, bk.Count)
	}
	for _, m := range []struct {
		name string
		v    float64
	}{{"p50", res.Latency.P50}, {"p90", res.Latency.P90}, {"p99", res.Latency.P99}} {
		if m.v < lo || m.v > hi {
			continue
		}
		x := f.x(m.v)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#c62828" stroke-dasharray="4 3"/><text x="%.1f" y="%.1f" font-size="11" fill="#c62828">%s %.3g</text>`+"\n",
			x, padTop, x, chartH-padBottom, x+3, padTop+12, m.name, m.v)
	}
	b.WriteString("</svg>")
	return b.String()
}

// linearTicks are about five round values from lo to hi.
func linearTicks(lo, hi float64) []float64 {
	step := niceStep((hi - lo) / 5)
	var out []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		out = append(out, v)
	}
	return out
}

// logTicks are the powers of ten from lo to hi, with 2 and 5 between them when there are few.
func logTicks(lo, hi float64) []float64 {
	var out []float64
	mults := []float64{1}
	if math.Log10(hi/lo) < 3 {
		mults = []float64{1, 2, 5}
	}
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range mults {
			if v := m * math.Pow(10, e); v >= lo && v <= hi {
				out = append(out, v)
			}
		}
	}
	return out
}

// niceStep rounds up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// niceCeil is v rounded up to a multiple of its nice step.
func niceCeil(v float64) float64 {
	s := niceStep(v / 5)
	return math.Ceil(v/s) * s
}

func tickText(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}
