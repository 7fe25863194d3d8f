//! The IR verifier: collects every structural error in a graph.
