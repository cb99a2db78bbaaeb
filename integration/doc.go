// Package integration holds keel's tests against keeltest clusters and kcat.
package integration
