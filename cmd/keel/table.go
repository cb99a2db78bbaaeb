package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// textTable prints rows under a header with columns aligned by spaces:
// text left-aligned, the columns marked numeric right-aligned so digits
// line up. It is for people; scripts get the same columns separated by
// runs of spaces, which awk splits fine.
type textTable struct {
	header  []string
	numeric map[int]bool
	rows    [][]string
}

func newTextTable(header ...string) *textTable {
	return &textTable{header: header, numeric: make(map[int]bool)}
}

// alignRight marks columns (by index) as numeric.
func (t *textTable) alignRight(cols ...int) *textTable {
	for _, c := range cols {
		t.numeric[c] = true
	}
	return t
}

// add appends one row; missing cells print empty.
func (t *textTable) add(cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = fmt.Sprint(c)
	}
	t.rows = append(t.rows, row)
}

func (t *textTable) print(w io.Writer) {
	widths := make([]int, len(t.header))
	measure := func(row []string) {
		for i, c := range row {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	measure(t.header)
	for _, r := range t.rows {
		measure(r)
	}
	line := func(row []string) {
		var b strings.Builder
		for i := range widths {
			cell := ""
			if i < len(row) {
				cell = row[i]
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			last := i == len(widths)-1
			switch {
			case t.numeric[i]:
				b.WriteString(pad + cell)
			case last:
				b.WriteString(cell) // no trailing spaces
			default:
				b.WriteString(cell + pad)
			}
			if !last {
				b.WriteString("  ")
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(t.header)
	for _, r := range t.rows {
		line(r)
	}
}
