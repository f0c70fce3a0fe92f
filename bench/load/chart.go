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
		"ferry-json":    {52, 101, 164, 255},
		"ferry-msgpack": {78, 154, 6, 255},
		"nats":          {245, 121, 0, 255},
	}
)

type panel struct {
	title  string
	groups []string             // x-axis groups (e.g. p50, p99), or one ""
	vals   map[string][]float64 // target → value per group
	notes  map[string]string    // target → text under its value (e.g. % delivered)
	format func(float64) string
	wide   bool
}

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

// Chart draws one panel per scenario case from results (in their order):
// throughput bars per target, idle memory per connection, and latency
// percentiles, and writes it as a PNG.
func Chart(w io.Writer, results []Result, title string) error {
	var panels []*panel
	byKey := map[string]*panel{}
	get := func(key, title string, groups []string, f func(float64) string, wide bool) *panel {
		p := byKey[key]
		if p == nil {
			p = &panel{title: title, groups: groups, vals: map[string][]float64{}, notes: map[string]string{}, format: f, wide: wide}
			byKey[key] = p
			panels = append(panels, p)
		}
		return p
	}
	for _, r := range results {
		if r.Err != "" {
			continue
		}
		pct := fmt.Sprintf("%.1f%%", r.DeliveredPct)
		switch r.Scenario {
		case "fanout", "fanin":
			p := get(r.Scenario+r.Case+"rate", fmt.Sprintf("%s %s: %s", r.Scenario, r.Case, r.RateUnit), []string{""}, human, false)
			p.vals[r.Target] = []float64{r.Rate}
			p.notes[r.Target] = pct
		case "idle":
			p := get(r.Scenario+r.Case+"rate", fmt.Sprintf("idle %s: conns/s", r.Case), []string{""}, human, false)
			p.vals[r.Target] = []float64{r.Rate}
			p.notes[r.Target] = fmt.Sprintf("n=%d", r.Conns)
			q := get(r.Scenario+r.Case+"mem", fmt.Sprintf("idle %s: KiB RSS/conn (lower=better)", r.Case), []string{""}, human, false)
			q.vals[r.Target] = []float64{r.PerConnKiB}
		case "latency":
			p := get(r.Scenario+r.Case, fmt.Sprintf("latency %s: ms (lower=better)", r.Case),
				[]string{"p50", "p90", "p99", "p99.9", "max"}, human, true)
			p.vals[r.Target] = []float64{r.P50ms, r.P90ms, r.P99ms, r.P999ms, r.MaxMs}
			p.notes[r.Target] = pct
		}
	}
	const cellW, cellH, cols, top = 330, 250, 4, 50
	// place panels: wide ones take two cells
	type placed struct {
		p    *panel
		x, y int
		w    int
	}
	var layout []placed
	col, row := 0, 0
	for _, p := range panels {
		span := 1
		if p.wide {
			span = 2
		}
		if col+span > cols {
			col, row = 0, row+1
		}
		layout = append(layout, placed{p, col * cellW, top + row*cellH, span * cellW})
		col += span
	}
	img := image.NewRGBA(image.Rect(0, 0, cols*cellW, top+(row+1)*cellH+10))
	draw.Draw(img, img.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)
	text(img, 10, 20, black, title)
	x := 10
	for _, t := range Targets {
		fill(img, x, 30, x+12, 42, colors[t.Name])
		text(img, x+16, 41, black, t.Name)
		x += 30 + 7*len(t.Name)
	}
	for _, l := range layout {
		drawPanel(img, l.p, l.x, l.y, l.w, cellH)
	}
	return png.Encode(w, img)
}

func drawPanel(img *image.RGBA, p *panel, x0, y0, w, h int) {
	text(img, x0+8, y0+16, black, p.title)
	// plot area
	left, right, topY, bottom := x0+10, x0+w-10, y0+45, y0+h-40
	max := 0.0
	for _, vs := range p.vals {
		for _, v := range vs {
			max = math.Max(max, v)
		}
	}
	if max <= 0 {
		text(img, left, (topY+bottom)/2, black, "no data")
		return
	}
	fill(img, left, bottom, right, bottom+1, grey)
	gw := (right - left) / len(p.groups)
	bw := (gw - 16) / len(Targets)
	if bw > 70 {
		bw = 70
	}
	for g, name := range p.groups {
		gx := left + g*gw + (gw-bw*len(Targets))/2
		for i, t := range Targets {
			vs, ok := p.vals[t.Name]
			if !ok {
				continue
			}
			v := vs[g]
			bh := int(float64(bottom-topY) * v / max)
			bx := gx + i*bw
			fill(img, bx+2, bottom-bh, bx+bw-2, bottom, colors[t.Name])
			label := p.format(v)
			text(img, bx+bw/2-len(label)*7/2, bottom-bh-3, black, label)
			if n := p.notes[t.Name]; n != "" && len(p.groups) == 1 {
				text(img, bx+bw/2-len(n)*7/2, bottom+14, black, n)
			}
		}
		if name != "" {
			text(img, left+g*gw+gw/2-len(name)*7/2, bottom+14, black, name)
		}
	}
	if len(p.groups) > 1 {
		s := "delivered:"
		for _, t := range Targets {
			if n := p.notes[t.Name]; n != "" {
				s += " " + t.Name + " " + n
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
