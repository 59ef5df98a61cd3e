//! `brine-swarm`: N real minion instances in one process (being built).

fn main() {}
