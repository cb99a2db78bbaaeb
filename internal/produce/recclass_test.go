package produce

import "testing"

// Every record count has a size class that fits it, the smallest that does.
func TestRecClassesCoverAndFit(t *testing.T) {
	for n := 1; n < 1<<20; n++ {
		c := recClass(n)
		if recClassSize(c) < n && c < recClasses-1 {
			t.Fatalf("class %d (size %d) too small for %d", c, recClassSize(c), n)
		}
		if c > 0 && recClassSize(c-1) >= n {
			t.Fatalf("class %d (size %d) for %d, but class %d (size %d) fits", c, recClassSize(c), n, c-1, recClassSize(c-1))
		}
		if recClass(recClassSize(c)) != c {
			t.Fatalf("recClass(recClassSize(%d)) = %d", c, recClass(recClassSize(c)))
		}
	}
}
