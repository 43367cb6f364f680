// Package browsertest holds the end-to-end tests of the one-time page in a real
// browser: headless Chromium (Debian's chromium package) driven by playwright-core
// from npm, against the bot running on 127.0.0.1. The tests are in
// browser_test.go and browser.test.mjs; see browser_test.go for what they need.
package browsertest
