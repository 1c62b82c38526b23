// Package e2e drives the viewers example in a real browser (Chromium over
// the DevTools protocol). It is a module of its own so that the library
// never depends on a browser driver.
package e2e
