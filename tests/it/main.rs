//! cutover's integration tests: one binary, shared helpers in `harness`.

mod harness;

mod clerk_identify;
