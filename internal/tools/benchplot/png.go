package benchplot

import (
	"fmt"
	"image/color"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/tern-mail/tern/internal/tools/bench"
)

var (
	blue = color.RGBA{R: 0x15, G: 0x65, B: 0xc0, A: 0xff}
	red  = color.RGBA{R: 0xc6, G: 0x28, B: 0x28, A: 0xff}
)

// PNG writes one image with the two charts of HTML, one above the other.
func PNG(w io.Writer, res *bench.Result) error {
	tp, err := throughputPlot(res)
	if err != nil {
		return err
	}
	lp, err := latencyPlot(res)
	if err != nil {
		return err
	}
	img := vgimg.New(10*vg.Inch, 8*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(12), PadY: vg.Points(18)}
	canvases := plot.Align([][]*plot.Plot{{tp}, {lp}}, tiles, dc)
	tp.Draw(canvases[0][0])
	lp.Draw(canvases[1][0])
	_, err = vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

// throughputPlot is messages per second over time, as steps.
func throughputPlot(res *bench.Result) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title(res)
	p.X.Label.Text = "seconds from the start"
	p.Y.Label.Text = "messages/s"
	p.Y.Min, p.X.Min, p.X.Max = 0, 0, max(res.Elapsed, 1e-3)
	pts := make(plotter.XYs, 0, len(res.Throughput)+1)
	if len(res.Throughput) > 0 {
		pts = append(pts, plotter.XY{X: 0, Y: res.Throughput[0].Rate})
	}
	for _, pt := range res.Throughput {
		pts = append(pts, plotter.XY{X: pt.T, Y: pt.Rate})
	}
	if len(pts) == 0 {
		return p, nil
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return nil, fmt.Errorf("throughput: %w", err)
	}
	line.StepStyle = plotter.PreStep
	line.Color = blue
	p.Add(line, plotter.NewGrid())
	return p, nil
}

// latencyPlot is how many messages took how long, on a logarithmic time axis, with p50, p90
// and p99 marked.
func latencyPlot(res *bench.Result) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("message latency: p50 %.3g ms, p90 %.3g ms, p99 %.3g ms, max %.3g ms",
		res.Latency.P50, res.Latency.P90, res.Latency.P99, res.Latency.Max)
	p.X.Label.Text = "latency per message (ms, logarithmic)"
	p.Y.Label.Text = "messages"
	p.Y.Min = 0
	d := res.Distribution
	if len(d) == 0 {
		return p, nil
	}
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = logTicker{}
	pts := plotter.XYs{{X: d[0].Lo, Y: 0}}
	var ymax float64
	for _, b := range d {
		pts = append(pts, plotter.XY{X: b.Hi, Y: float64(b.Count)})
		ymax = max(ymax, float64(b.Count))
	}
	hist, err := plotter.NewLine(pts)
	if err != nil {
		return nil, fmt.Errorf("latency: %w", err)
	}
	hist.StepStyle = plotter.PreStep
	hist.Color = blue
	hist.FillColor = color.NRGBA{R: 0x42, G: 0xa5, B: 0xf5, A: 0x80}
	p.Add(hist, plotter.NewGrid())
	for _, v := range []float64{res.Latency.P50, res.Latency.P90, res.Latency.P99} {
		if v < d[0].Lo || v > d[len(d)-1].Hi {
			continue
		}
		mark, err := plotter.NewLine(plotter.XYs{{X: v, Y: 0}, {X: v, Y: ymax}})
		if err != nil {
			return nil, fmt.Errorf("latency: %w", err)
		}
		mark.Color = red
		mark.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(mark)
	}
	return p, nil
}

// logTicker labels 1, 2 and 5 times the powers of ten when the axis spans few of them (gonum's
// LogTicks labels the powers only, often one on a latency axis), the powers alone otherwise.
type logTicker struct{}

func (logTicker) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for _, v := range logTicks(lo, hi) {
		out = append(out, plot.Tick{Value: v, Label: tickText(v)})
	}
	return out
}
