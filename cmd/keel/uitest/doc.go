// Package uitest drives the keel ui console in a real headless Chromium
// against a keeltest cluster. It is its own module so the browser driver
// (chromedp) stays out of the keel binary's dependencies.
package uitest
