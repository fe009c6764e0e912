//! The dry-run planner (in progress).
