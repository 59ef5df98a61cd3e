//! brine's fuzz targets. The bodies live in [`targets`], which the corpus replay test
//! (`tests/tests/fuzz_corpus.rs`) includes as well, so fuzzing and replay run the same code.

pub mod targets;
