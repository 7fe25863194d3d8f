//! The reference evaluator: runs a graph op by op with each op's plain implementation.
