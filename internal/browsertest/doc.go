// Package browsertest holds tests that drive a real browser (Debian's
// chromium, headless, through chromedp) against roxd's web pages. It has no
// code of its own.
//
// The tests find chromium on PATH (or at ROXD_CHROMIUM). When it is missing
// they install it with scripts/install-chromium.sh under CI=true and fail if
// that does not work; elsewhere they are skipped with a message saying how to
// install it. Screenshots go to ROXD_SCREENSHOT_DIR, or to the test's
// temporary directory; the test log names the file.
package browsertest
