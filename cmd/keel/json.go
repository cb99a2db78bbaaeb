package main

import (
	"encoding/json"
	"flag"
	"fmt"
)

// jsonFlag registers --json, which list and describe commands take to
// print one JSON document for scripts instead of tables for people.
func jsonFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("json", false, "print JSON for scripts instead of a table")
}

// printJSON writes v as indented JSON and a newline to stdout.
func printJSON(io stdio, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding JSON: %w", err)
	}
	b = append(b, '\n')
	_, err = io.out.Write(b)
	return err
}
