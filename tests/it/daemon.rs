//! daemon end-to-end tests (in progress)
