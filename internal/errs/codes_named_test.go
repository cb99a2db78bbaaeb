package errs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

// TestNamedCodesMatchTable reads codes_named.go and checks that every
// constant names the code it holds, and that every code in the table has
// a constant, so the two files cannot drift apart.
func TestNamedCodesMatchTable(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "codes_named.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int16]bool{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, s := range gd.Specs {
			vs := s.(*ast.ValueSpec)
			name := vs.Names[0].Name
			lit := vs.Values[0]
			neg := false
			if u, ok := lit.(*ast.UnaryExpr); ok && u.Op == token.SUB {
				neg, lit = true, u.X
			}
			n, err := strconv.Atoi(lit.(*ast.BasicLit).Value)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if neg {
				n = -n
			}
			code := int16(n)
			info, ok := codes[code]
			if !ok {
				t.Errorf("%s = %d: no such code in the table", name, code)
				continue
			}
			if want := "Code" + camel(info.Name); name != want {
				t.Errorf("code %d is named %s; the table calls it %s (want %s)", code, name, info.Name, want)
			}
			seen[code] = true
		}
	}
	for code, info := range codes {
		if !seen[code] {
			t.Errorf("code %d (%s) has no named constant in codes_named.go", code, info.Name)
		}
	}
}

func camel(name string) string {
	var b strings.Builder
	for _, w := range strings.Split(name, "_") {
		if w == "" {
			continue
		}
		b.WriteString(w[:1] + strings.ToLower(w[1:]))
	}
	return b.String()
}
