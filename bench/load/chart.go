package load

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

var (
	white  = color.RGBA{255, 255, 255, 255}
	black  = color.RGBA{30, 30, 30, 255}
	grey   = color.RGBA{200, 200, 200, 255}
	colors = map[string]color.RGBA{
		"ferry-json":        {52, 101, 164, 255},
		"ferry-msgpack":     {78, 154, 6, 255},
		"ferry-sdk-json":    {114, 159, 207, 255},
		"ferry-sdk-msgpack": {138, 226, 52, 255},
		"nats":              {245, 121, 0, 255},
		"mosquitto":         {117, 80, 123, 255},
	}
	otherColor = color.RGBA{136, 138, 133, 255}
)

func colorOf(target string) color.RGBA {
	if c, ok := colors[target]; ok {
		return c
	}
	return otherColor
}

type panel struct {
	title  string
	groups []string             // x-axis groups (e.g. p50, p99), or one ""
	vals   map[string][]float64 // target → value per group
	notes  map[string]string    // target → text under its value (e.g. % delivered)
	format func(float64) string
	span   int // cells it takes in its row (1 to chartCols)
}

// chartCols is the number of panel cells per row of the chart.
const chartCols = 4

func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// chartTargets returns the targets that have a result to show, in the
// order of Targets, then any other (from a saved file) in their order.
func chartTargets(results []Result) []string {
	seen := map[string]bool{}
	for _, r := range results {
		if r.ok() && r.Scenario != "cluster" { // the chart does not show cluster
			seen[r.Target] = true
		}
	}
	var out []string
	for _, t := range Targets {
		if seen[t.Name] {
			out = append(out, t.Name)
			delete(seen, t.Name)
		}
	}
	for _, r := range results {
		if seen[r.Target] && r.Scenario != "cluster" {
			out = append(out, r.Target)
			delete(seen, r.Target)
		}
	}
	return out
}

// ChartTitle names the brokers of results: "ferry vs NATS", with
// mosquitto when it has results.
func ChartTitle(results []Result) string {
	title := "ferry vs NATS"
	for _, r := range results {
		if r.Target == "mosquitto" && r.ok() {
			title = "ferry vs NATS and mosquitto"
			break
		}
	}
	return title
}

// Chart draws one panel per scenario case from results (in their order):
// throughput bars per target, idle memory per connection, latency
// percentiles, and iot's broker CPU per message, p99 and RSS, and writes it
// as a PNG. Targets without results (skipped, failed) have no bar.
func Chart(w io.Writer, results []Result, title string) error {
	var panels []*panel
	byKey := map[string]*panel{}
	get := func(key, title string, groups []string, f func(float64) string, span int) *panel {
		p := byKey[key]
		if p == nil {
			p = &panel{title: title, groups: groups, vals: map[string][]float64{}, notes: map[string]string{}, format: f, span: span}
			byKey[key] = p
			panels = append(panels, p)
		}
		return p
	}
	targets := chartTargets(results)
	// a latency panel's bars: one per target in each of its 5 groups
	latSpan := 2
	if len(targets) > 3 {
		latSpan = chartCols
	}
	for _, r := range results {
		if !r.ok() || r.Scenario == "cluster" {
			continue
		}
		pct := fmt.Sprintf("%.1f%%", r.DeliveredPct)
		switch r.Scenario {
		case "fanout", "fanin":
			p := get(r.Scenario+r.Case+"rate", fmt.Sprintf("%s %s: %s", r.Scenario, r.Case, r.RateUnit), []string{""}, human, 1)
			p.vals[r.Target] = []float64{r.Rate}
			p.notes[r.Target] = pct
		case "idle":
			p := get(r.Scenario+r.Case+"rate", fmt.Sprintf("idle %s: conns/s", r.Case), []string{""}, human, 1)
			p.vals[r.Target] = []float64{r.Rate}
			p.notes[r.Target] = fmt.Sprintf("n=%d", r.Conns)
			q := get(r.Scenario+r.Case+"mem", fmt.Sprintf("idle %s: KiB RSS/conn (lower=better)", r.Case), []string{""}, human, 1)
			q.vals[r.Target] = []float64{r.PerConnKiB}
		case "latency":
			p := get(r.Scenario+r.Case, fmt.Sprintf("latency %s: ms (lower=better)", r.Case),
				[]string{"p50", "p90", "p99", "p99.9", "max"}, human, latSpan)
			p.vals[r.Target] = []float64{r.P50ms, r.P90ms, r.P99ms, r.P999ms, r.MaxMs}
			p.notes[r.Target] = pct
		case "iot":
			p := get(r.Scenario+r.Case+"cpu", fmt.Sprintf("iot %s: broker CPU us/msg (lower=better)", r.Case), []string{""}, human, 2)
			p.vals[r.Target] = []float64{r.CPUPerMsgUs}
			p.notes[r.Target] = pct
			q := get(r.Scenario+r.Case+"p99", "iot: p99 ms publish->dashboard", []string{""}, human, 1)
			q.vals[r.Target] = []float64{r.P99ms}
			m := get(r.Scenario+r.Case+"rss", "iot: broker RSS MiB", []string{""}, human, 1)
			m.vals[r.Target] = []float64{float64(r.BrokerRSS) / (1 << 20)}
		}
	}
	const cellW, cellH, top = 330, 250, 50
	type placed struct {
		p    *panel
		x, y int
		w    int
	}
	var layout []placed
	col, row := 0, 0
	for _, p := range panels {
		span := min(max(p.span, 1), chartCols)
		if col+span > chartCols {
			col, row = 0, row+1
		}
		layout = append(layout, placed{p, col * cellW, top + row*cellH, span * cellW})
		col += span
	}
	img := image.NewRGBA(image.Rect(0, 0, chartCols*cellW, top+(row+1)*cellH+10))
	draw.Draw(img, img.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)
	text(img, 10, 20, black, title)
	x := 10
	for _, t := range targets {
		fill(img, x, 30, x+12, 42, colorOf(t))
		text(img, x+16, 41, black, t)
		x += 30 + 7*len(t)
	}
	for _, l := range layout {
		drawPanel(img, l.p, targets, l.x, l.y, l.w, cellH)
	}
	return png.Encode(w, img)
}

func drawPanel(img *image.RGBA, p *panel, targets []string, x0, y0, w, h int) {
	text(img, x0+8, y0+16, black, p.title)
	// plot area
	left, right, topY, bottom := x0+10, x0+w-10, y0+45, y0+h-40
	// the scale: the largest value, unless one target's values dwarf all
	// the others' (more than 4 times their largest): then the others
	// decide it, and that target's bars are cut (shown with a gap; their
	// labels keep the value)
	first, second := 0.0, 0.0
	for _, vs := range p.vals {
		m := 0.0
		for _, v := range vs {
			m = math.Max(m, v)
		}
		if m > first {
			first, second = m, first
		} else if m > second {
			second = m
		}
	}
	top := first
	if second > 0 && first > 4*second {
		top = 1.25 * second
	}
	if top <= 0 {
		text(img, left, (topY+bottom)/2, black, "no data")
		return
	}
	fill(img, left, bottom, right, bottom+1, grey)
	gw := (right - left) / len(p.groups)
	bw := (gw - 16) / max(len(targets), 1)
	if bw > 70 {
		bw = 70
	}
	for g, name := range p.groups {
		gx := left + g*gw + (gw-bw*len(targets))/2
		for i, t := range targets {
			vs, ok := p.vals[t]
			if !ok {
				continue
			}
			v := vs[g]
			bh := int(float64(bottom-topY) * math.Min(v, top) / top)
			bx := gx + i*bw
			fill(img, bx+2, bottom-bh, bx+bw-2, bottom, colorOf(t))
			if v > top { // cut: a gap near the top
				fill(img, bx+2, bottom-bh+12, bx+bw-2, bottom-bh+16, white)
			}
			label := p.format(v)
			// labels of neighbouring bars that would overlap take turns
			// above the bar, one line apart
			ly := bottom - bh - 3
			if len(label)*7 > bw-6 && i%2 == 1 {
				ly -= 12
			}
			text(img, bx+bw/2-len(label)*7/2, ly, black, label)
			if n := p.notes[t]; n != "" && len(p.groups) == 1 {
				ny := bottom + 14
				if len(n)*7 > bw-6 && i%2 == 1 {
					ny += 12
				}
				text(img, bx+bw/2-len(n)*7/2, ny, black, n)
			}
		}
		if name != "" {
			text(img, left+g*gw+gw/2-len(name)*7/2, bottom+14, black, name)
		}
	}
	if len(p.groups) > 1 {
		s := "delivered:"
		for _, t := range targets {
			if n := p.notes[t]; n != "" {
				s += " " + t + " " + n
			}
		}
		text(img, left, bottom+30, black, s)
	}
}

func fill(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	draw.Draw(img, image.Rect(x0, y0, x1, y1), image.NewUniform(c), image.Point{}, draw.Src)
}

func text(img *image.RGBA, x, y int, c color.RGBA, s string) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13,
		Dot: fixed.P(x, y)}
	d.DrawString(s)
}
