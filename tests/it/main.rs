//! The integration tests: one binary, shared helpers.

mod import_files;
mod import_support;
