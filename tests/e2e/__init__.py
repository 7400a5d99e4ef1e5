"""Browser tests of the web console (headless Chromium through Playwright)."""
