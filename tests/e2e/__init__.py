"""End-to-end tests (a package, so their module names, e.g. `e2e.test_admission`, never
clash with the layer tests' `test_admission` in tests/core)."""
