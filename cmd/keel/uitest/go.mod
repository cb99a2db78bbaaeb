module github.com/keel-go/keel/cmd/keel/uitest

go 1.26.0

require (
	github.com/chromedp/cdproto v0.160.1
	github.com/chromedp/chromedp v0.23.1
	github.com/keel-go/keel v0.0.0
	github.com/keel-go/keel/cmd/keel v0.0.0
	github.com/keel-go/keel/keeltest v0.0.0
)

require (
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/pierrec/lz4/v4 v4.1.33 // indirect
	github.com/twmb/franz-go v1.22.2 // indirect
	github.com/twmb/franz-go/pkg/kfake v0.0.0-20260918054303-01f206a7e32c // indirect
	github.com/twmb/franz-go/pkg/kmsg v1.15.1 // indirect
)

replace (
	github.com/keel-go/keel => ../../..
	github.com/keel-go/keel/cmd/keel => ..
	github.com/keel-go/keel/keeltest => ../../../keeltest
	github.com/keel-go/keel/plugin/prometheus => ../../../plugin/prometheus
)
