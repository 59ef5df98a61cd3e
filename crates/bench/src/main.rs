//! `brine-bench`: the benchmark runner (being built).

fn main() {}
