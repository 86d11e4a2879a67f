//! Fuzzing (placeholder)
