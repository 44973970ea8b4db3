package logs

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRing(t *testing.T) {
	mk := func(from, to int) []Line {
		var out []Line
		for i := from; i < to; i++ {
			out = append(out, Line{Line: fmt.Sprint(i)})
		}
		return out
	}
	text := func(ls []Line) []string {
		out := []string{}
		for _, l := range ls {
			out = append(out, l.Line)
		}
		return out
	}
	cases := []struct {
		name  string
		size  int
		adds  [][2]int
		limit int
		want  []string
	}{
		{"empty", 3, nil, 0, []string{}},
		{"partial all", 3, [][2]int{{0, 2}}, 0, []string{"0", "1"}},
		{"partial limited", 3, [][2]int{{0, 2}}, 1, []string{"1"}},
		{"wrapped", 3, [][2]int{{0, 2}, {2, 5}}, 0, []string{"2", "3", "4"}},
		{"wrapped limited", 3, [][2]int{{0, 4}}, 2, []string{"2", "3"}},
		{"one add bigger than ring", 3, [][2]int{{0, 10}}, 5, []string{"7", "8", "9"}},
		{"zero size", 0, [][2]int{{0, 3}}, 0, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRing(tc.size)
			for _, a := range tc.adds {
				r.add(mk(a[0], a[1]))
			}
			require.Equal(t, tc.want, text(r.last(tc.limit)))
		})
	}
}
