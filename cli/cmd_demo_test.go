package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoCommandCallsAnother: a command's run function is called only by
// the dispatcher (through command.run), never by another command: the
// demo's headless path, the wizard's adapters and the rest call the
// packages the commands use instead (docs/ARCHITECTURE.md: main only wires).
func TestNoCommandCallsAnother(t *testing.T) {
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	// The run functions are the values of register(command{run: ...}).
	runs := map[string]bool{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if kv, ok := n.(*ast.KeyValueExpr); ok {
				if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "run" {
					if v, ok := kv.Value.(*ast.Ident); ok {
						runs[v.Name] = true
					}
				}
			}
			return true
		})
	}
	if len(runs) < 5 {
		t.Fatalf("found only %d commands' run functions (%v): the register(command{run: ...}) shape changed", len(runs), runs)
	}
	for _, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				if c, ok := n.(*ast.CallExpr); ok {
					if id, ok := c.Fun.(*ast.Ident); ok && runs[id.Name] {
						t.Errorf("%s: %s calls the command function %s", fset.Position(c.Pos()), fd.Name.Name, id.Name)
					}
				}
				return true
			})
		}
	}
}
