package errs

import "strconv"

// CodeInfo describes one Kafka error code.
type CodeInfo struct {
	Name      string
	Text      string // short human description
	Retriable bool   // the Java client's RetriableException classification
	Metadata  bool   // the error means the client's metadata is stale: refresh it
}

// Lookup returns what keel knows of a Kafka error code. Unknown codes are
// reported as non-retriable with their number in the name.
func Lookup(code int16) CodeInfo {
	if info, ok := codes[code]; ok {
		return info
	}
	return CodeInfo{Name: "UNKNOWN_ERROR_CODE_" + strconv.Itoa(int(code)), Text: "an error code this version of keel does not know"}
}

// codes is declared in codes_table.go.
