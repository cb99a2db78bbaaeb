package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// perfProgress redraws one status line on stderr every second: each
// drawing starts with \r and is padded over the previous one, so a
// terminal shows a single line changing in place. stop draws the last
// state and ends the line, so what follows starts on a fresh line.
type perfProgress struct {
	w     io.Writer
	line  func(elapsed time.Duration) string
	start time.Time

	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
	width    int // of the previous drawing, to blank its leftovers
}

const perfProgressEvery = time.Second

// startPerfProgress draws line(elapsed) every second until stop. With
// enabled false it draws nothing and stop does nothing.
func startPerfProgress(w io.Writer, enabled bool, line func(elapsed time.Duration) string) *perfProgress {
	p := &perfProgress{w: w, line: line, start: time.Now(), quit: make(chan struct{}), done: make(chan struct{})}
	if !enabled {
		close(p.done)
		p.stopOnce.Do(func() {})
		return p
	}
	go p.run()
	return p
}

func (p *perfProgress) run() {
	defer close(p.done)
	t := time.NewTicker(perfProgressEvery)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			p.draw()
			fmt.Fprintln(p.w)
			return
		case <-t.C:
			p.draw()
		}
	}
}

func (p *perfProgress) draw() {
	s := p.line(time.Since(p.start))
	n := utf8.RuneCountInString(s)
	pad := max(p.width-n, 0)
	p.width = n
	fmt.Fprint(p.w, "\r"+s+strings.Repeat(" ", pad))
}

// stop draws the final line and returns once the drawing goroutine ended.
func (p *perfProgress) stop() {
	p.stopOnce.Do(func() { close(p.quit) })
	<-p.done
}

// perfWindowRates are the rates the progress line shows: over the last
// window (n records, b bytes in d), or over the whole run (total records
// and bytes in elapsed) when the window is too short to mean anything —
// the final drawing comes right after a periodic one.
func perfWindowRates(n, b int64, d time.Duration, totalN, totalB int64, elapsed time.Duration) (recPerSec, mbPerSec float64) {
	if d < perfProgressEvery/2 {
		return perfRate(totalN, elapsed), perfMBps(totalB, elapsed)
	}
	return perfRate(n, d), perfMBps(b, d)
}
