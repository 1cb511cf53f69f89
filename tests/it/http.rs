//! http end-to-end tests (in progress)
