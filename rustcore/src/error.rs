//! The one error type of the core. Both transports map it the same way:
//! `InvalidInput` and `Numerical` -> Python `ValueError` / gRPC `INVALID_ARGUMENT`,
//! `Cancelled` -> Python `hft_lab.backends.Cancelled` / gRPC `CANCELLED`,
//! `ResourceExhausted` (over the memory budget, see `limits`) -> Python `ValueError` (the
//! subclass `hft_lab.backends.ResourceLimitExceeded`) / gRPC `RESOURCE_EXHAUSTED`.
//! The message is the user-facing text: it names the parameter and the problem.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum CoreError {
    /// The caller's input is wrong (NaN, empty, too short, shape mismatch, absurd parameter).
    InvalidInput(String),
    /// The input is well-formed but the problem cannot be solved (singular matrix, infeasible, no convergence).
    Numerical(String),
    /// The caller asked the computation to stop.
    Cancelled,
    /// The request would need more memory than the budget allows (or an allocation failed).
    ResourceExhausted(String),
}

pub type CoreResult<T> = Result<T, CoreError>;

impl CoreError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        CoreError::InvalidInput(msg.into())
    }
    pub fn numerical(msg: impl Into<String>) -> Self {
        CoreError::Numerical(msg.into())
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::InvalidInput(m)
            | CoreError::Numerical(m)
            | CoreError::ResourceExhausted(m) => f.write_str(m),
            CoreError::Cancelled => f.write_str("cancelled by the user"),
        }
    }
}

impl std::error::Error for CoreError {}

/// Shared input checks, so every algorithm words the same problem the same way.
pub mod check {
    use super::{CoreError, CoreResult};

    /// `name` must be non-empty and every value finite.
    pub fn finite(name: &str, values: &[f64]) -> CoreResult<()> {
        if values.is_empty() {
            return Err(CoreError::invalid(format!("{name} is empty")));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            let what = if values[i].is_nan() {
                "NaN"
            } else {
                "an infinite value"
            };
            return Err(CoreError::invalid(format!(
                "{name} contains {what} at index {i}"
            )));
        }
        Ok(())
    }

    /// A row-major matrix of `rows` x `cols` with finite values; index reported as (row, column).
    pub fn finite_matrix(name: &str, values: &[f64], rows: usize, cols: usize) -> CoreResult<()> {
        if rows == 0 || cols == 0 {
            return Err(CoreError::invalid(format!(
                "{name} is empty ({rows} x {cols})"
            )));
        }
        if values.len() != rows * cols {
            return Err(CoreError::invalid(format!(
                "{name} has {} values but its shape is {rows} x {cols}",
                values.len()
            )));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            let what = if values[i].is_nan() {
                "NaN"
            } else {
                "an infinite value"
            };
            return Err(CoreError::invalid(format!(
                "{name} contains {what} at row {}, column {}",
                i / cols,
                i % cols
            )));
        }
        Ok(())
    }

    /// A strictly positive finite parameter.
    pub fn positive(name: &str, value: f64) -> CoreResult<()> {
        if !(value.is_finite() && value > 0.0) {
            return Err(CoreError::invalid(format!(
                "{name} must be a positive finite number, got {value}"
            )));
        }
        Ok(())
    }
}
